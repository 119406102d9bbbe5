//! v1's text endpoints (docs/v1.md §2): the lines of v1's
//! templates written through a Go `text/tabwriter` port with minwidth 0,
//! tabwidth 4, padding 0, pad `' '`.
//!
//! Each value line is `\t<label>\t<value>`: an empty first cell, the label
//! cell, the value as the trailing cell, so values align to the widest label
//! within each run of consecutive value lines; header lines (`  PCI`) have
//! no tab and end a run. Nil values print `N/A` (without unit).

use std::fmt::Display;
use std::io::Write;

use tabwriter::TabWriter;

use super::info::{link_name, GpuInfo};
use super::status::GpuStatus;

fn na<T: Display>(v: Option<T>, unit: &str) -> String {
    match v {
        Some(v) => format!("{v}{unit}"),
        None => "N/A".to_owned(),
    }
}

fn ratio<T: Display, U: Display>(used: Option<T>, total: Option<U>, unit: &str) -> String {
    match (used, total) {
        (Some(u), Some(t)) => format!("{u} / {t}{unit}"),
        _ => "N/A".to_owned(),
    }
}

/// Template text to aligned text.
fn align(text: &str) -> String {
    let mut tw = TabWriter::new(Vec::with_capacity(text.len() + 256))
        .minwidth(0)
        .padding(0);
    // Writing into a Vec cannot fail.
    let _ = tw.write_all(text.as_bytes());
    let _ = tw.flush();
    let bytes = tw.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

struct Lines(String);

impl Lines {
    fn value(&mut self, label: &str, value: impl Display) {
        self.0.push_str(&format!("\t{label}\t{value}\n"));
    }
    fn header(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\n');
    }
}

/// `GET /gpu/info`.
pub fn info(info: &GpuInfo) -> String {
    let mut t = Lines(String::with_capacity(2048));
    t.header("");
    t.value("Driver version:  ", &info.version.driver);
    t.value("Supported CUDA version:  ", &info.version.cuda);
    for (i, d) in info.devices.iter().flatten().enumerate() {
        t.header("");
        t.header(&format!("Device #{i}"));
        t.value("  Model:  ", na(d.model.as_deref(), ""));
        t.value("  UUID:  ", &d.uuid);
        t.value("  Path:  ", &d.path);
        t.value("  Family: ", na(d.family.as_deref(), ""));
        t.value("  Arch:  ", na(d.arch.as_deref(), ""));
        t.value("  Cores:  ", na(d.cores, ""));
        t.value("  Power:  ", na(d.power, " W"));
        t.value(
            "  CPU Affinity:  ",
            d.cpu_affinity
                .map_or_else(|| "N/A".to_owned(), |n| format!("NUMA node{n}")),
        );
        t.header("  PCI");
        t.value("    Bus ID:  ", &d.pci.bus_id);
        t.value("    BAR1:  ", na(d.pci.bar1, " MiB"));
        t.value("    Bandwidth:  ", na(d.pci.bandwidth, " MB/s"));
        t.header("  Memory");
        t.value("    ECC:  ", na(d.memory.ecc, ""));
        t.value("    Global:  ", na(d.memory.global, " MiB"));
        t.value("    Constant:  ", na(d.memory.constant, " KiB"));
        t.value("    Shared:  ", na(d.memory.shared, " KiB"));
        t.value("    L2 Cache:  ", na(d.memory.l2_cache, " KiB"));
        t.value("    Bandwidth:  ", na(d.memory.bandwidth, " MB/s"));
        t.header("  Clocks");
        t.value("    Cores:  ", na(d.clocks.cores, " MHz"));
        t.value("    Memory:  ", na(d.clocks.memory, " MHz"));
        match &d.topology {
            Some(peers) => {
                t.header("  P2P Available");
                for p in peers {
                    t.header(&format!("    {} - {}", p.bus_id, link_name(p.link)));
                }
            }
            None => t.value("  P2P Available:  ", "None"),
        }
    }
    t.header("");
    align(&t.0)
}

/// `GET /gpu/status`: the live status, with totals from `info`.
pub fn status(status: &GpuStatus, info: &GpuInfo) -> String {
    let mut t = Lines(String::with_capacity(2048));
    let devices = info.devices.as_deref().unwrap_or_default();
    for (i, s) in status.devices.iter().enumerate() {
        let dev = devices.get(i);
        t.header("");
        t.header(&format!("Device #{i}"));
        t.value(
            "  Power:  ",
            ratio(s.power, dev.and_then(|d| d.power), " W"),
        );
        t.value("  Temperature:  ", na(s.temperature, " °C"));
        t.header("  Utilization");
        t.value("    GPU:  ", na(s.utilization.gpu, " %"));
        t.value("    Memory:  ", na(s.utilization.memory, " %"));
        t.value("    Encoder:  ", na(s.utilization.encoder, " %"));
        t.value("    Decoder:  ", na(s.utilization.decoder, " %"));
        t.header("  Memory");
        t.value(
            "    Global:  ",
            ratio(
                s.memory.global_used,
                dev.and_then(|d| d.memory.global),
                " MiB",
            ),
        );
        t.header("    ECC Errors");
        t.value("      L1 Cache:  ", na(s.memory.ecc_errors.l1_cache, ""));
        t.value("      L2 Cache:  ", na(s.memory.ecc_errors.l2_cache, ""));
        t.value("      Global:  ", na(s.memory.ecc_errors.global, ""));
        t.header("  PCI");
        t.value(
            "    BAR1:  ",
            ratio(s.pci.bar1_used, dev.and_then(|d| d.pci.bar1), " MiB"),
        );
        t.header("    Throughput");
        t.value("      RX:  ", na(s.pci.throughput.rx, " MB/s"));
        t.value("      TX:  ", na(s.pci.throughput.tx, " MB/s"));
        t.header("  Clocks");
        t.value("    Cores:  ", na(s.clocks.cores, " MHz"));
        t.value("    Memory:  ", na(s.clocks.memory, " MHz"));
        match &s.processes {
            Some(procs) => {
                t.header("  Processes");
                for p in procs {
                    t.value("    - PID:  ", p.pid);
                    t.value("      Name:  ", &p.name);
                    t.value("      Memory:  ", na(p.memory_used, " MiB"));
                }
            }
            None => t.value("  Processes:  ", "None"),
        }
    }
    t.header("");
    align(&t.0)
}
