//! v1's log and error lines (docs/v1.md §1, §2): Go's `log`
//! package with the prefix `<argv0> | ` and the standard date and time in
//! local time, `2017/03/02 15:31:46`.

use std::io::Write;

/// `2017/03/02 15:31:46`, local time (UTC when the zone is unknown).
pub fn timestamp() -> String {
    jiff::ZonedDateTime::now()
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string()
}

/// One v1 log line, without the newline: `<argv0> | <date> <msg>`.
pub fn line(argv0: &str, msg: &str) -> String {
    format!("{argv0} | {} {msg}", timestamp())
}

/// v1's error line: `<argv0> | <date> Error: <msg>`.
pub fn error_line(argv0: &str, msg: &str) -> String {
    line(argv0, &format!("Error: {msg}"))
}

/// Installs an `env_logger` writing v1's line format to stderr (`RUST_LOG`
/// filters, `default` otherwise). Warnings and errors keep their level word.
pub fn init(argv0: &str, default: &str) {
    let argv0 = argv0.to_owned();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(move |buf, record| {
            let msg = match record.level() {
                log::Level::Error => format!("Error: {}", record.args()),
                log::Level::Warn => format!("Warning: {}", record.args()),
                _ => record.args().to_string(),
            };
            writeln!(buf, "{}", line(&argv0, &msg))
        })
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_shape() {
        let l = error_line("nvidia-docker", "boom");
        let (prefix, rest) = l.split_once(" | ").unwrap();
        assert_eq!(prefix, "nvidia-docker");
        // 2017/03/02 15:31:46 Error: boom
        assert_eq!(rest.len(), 19 + " Error: boom".len());
        assert_eq!(&rest[4..5], "/");
        assert_eq!(&rest[13..14], ":");
        assert!(rest.ends_with(" Error: boom"));
    }
}
