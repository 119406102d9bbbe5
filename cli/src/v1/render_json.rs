//! Go `encoding/json` output (docs/v1.md §2): compact, keys in
//! struct order (the serde field order), `null` for nil, `<`, `>`, `&`,
//! U+2028 and U+2029 escaped as `\u003c`..., `\b`/`\f` as `\u0008`/`\u000c`,
//! and one trailing newline (`json.Encoder.Encode`).

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// serde_json's compact formatter with Go's string escaping.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let bytes = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xf)],
                ];
                return writer.write_all(&bytes);
            }
        };
        writer.write_all(s)
    }
}

/// `value` as Go's `json.NewEncoder(w).Encode(value)` writes it.
pub fn to_go_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(512);
    let mut ser = Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping() {
        let v = serde_json::json!({"a": "<x>&\u{2028}\u{8}\u{c}\u{1}\n\"\\/é"});
        assert_eq!(
            String::from_utf8(to_go_json(&v).unwrap()).unwrap(),
            "{\"a\":\"\\u003cx\\u003e\\u0026\\u2028\\u0008\\u000c\\u0001\\n\\\"\\\\/é\"}\n"
        );
        assert_eq!(to_go_json(&Option::<u8>::None).unwrap(), b"null\n");
    }
}
