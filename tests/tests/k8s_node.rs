//! Issue 12: what `nvidia-docker setup` installs on a Kubernetes node and
//! that a daemon reads itself: the CDI refresh units, checked by systemd's
//! own parser (`systemd-analyze verify`: unknown keys, a missing
//! `ExecStart` binary, a bad `Unit=` reference all fail it).
use e2e::hook::SimHost;
use e2e::process::run_timeout;
use e2e::{require, Prereq};

use crate::config_common::{run_setup, setup_binary};

#[test]
fn cdi_refresh_units_pass_systemd_analyze_verify() {
    require!(Prereq::Tool("systemd-analyze"));
    let host = SimHost::synthetic(1).unwrap();
    let dir = host.dir().join("units");
    let cli = setup_binary().unwrap();
    run_setup(
        &host,
        &[
            "cdi-refresh",
            "--systemd-dir",
            dir.to_str().unwrap(),
            "--udev-dir",
            dir.join("udev").to_str().unwrap(),
            "--cli-path",
            cli.to_str().unwrap(),
            "--write",
        ],
        &[],
    )
    .unwrap();
    let mut verify = e2e::process::command("systemd-analyze");
    verify
        .arg("verify")
        .arg(dir.join("nvidia-docker-cdi-refresh.service"))
        .arg(dir.join("nvidia-docker-cdi-refresh.path"));
    let out = run_timeout(&mut verify, std::time::Duration::from_secs(60)).unwrap();
    out.assert_success();
    assert_eq!(out.stderr.trim(), "", "{out}");
}
