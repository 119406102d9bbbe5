//! Device selection: `NVIDIA_VISIBLE_DEVICES`, `NV_GPU` and v1's `dev=`.
//!
//! Ids are parsed once into [`DeviceSelector`]s and resolved against an
//! [`Inventory`] with v1's `FilterDevices` semantics, widened to the modern
//! forms: a decimal NVML index; a `GPU-` UUID, full or a unique prefix,
//! ASCII case ignored; a PCI bus id with any domain width; the MIG forms
//! `<gpu>:<mig>`, `MIG-<uuid>` and `MIG-GPU-<uuid>/<gi>/<ci>`. Duplicates
//! collapse and the result is in ascending index order.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::inventory::{Gpu, Inventory, MigDevice};
use crate::refusal::Refusal;

/// A PCI location, `domain:bus:device.function`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciBusId {
    /// PCI domain (NVML: 32 bits; `/proc`: often 16).
    pub domain: u32,
    /// Bus.
    pub bus: u8,
    /// Device (0..32).
    pub device: u8,
    /// Function (0..8).
    pub function: u8,
}

fn hex_field(s: &str, max_digits: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl PciBusId {
    /// Parses `[domain:]bus:device.function` in hex, any case, with a domain
    /// of one to eight digits (`0000:04:00.0`, `00000000:04:00.0`, `04:00.0`).
    pub fn parse(s: &str) -> Option<PciBusId> {
        let (rest, function) = s.rsplit_once('.')?;
        let mut fields = rest.split(':').collect::<Vec<_>>();
        if !(2..=3).contains(&fields.len()) {
            return None;
        }
        let device = hex_field(fields.pop()?, 2)?;
        let bus = hex_field(fields.pop()?, 2)?;
        let domain = match fields.pop() {
            Some(d) => hex_field(d, 8)?,
            None => 0,
        };
        let function = hex_field(function, 1)?;
        if device >= 32 || function >= 8 {
            return None;
        }
        Some(PciBusId {
            domain,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }

    /// The names `/proc/driver/nvidia/gpus/` may use for this GPU: the 16-bit
    /// domain form (`0000:04:00.0`) first, then the 32-bit one.
    pub fn proc_names(&self) -> [String; 2] {
        [
            format!(
                "{:04x}:{:02x}:{:02x}.{:x}",
                self.domain, self.bus, self.device, self.function
            ),
            format!(
                "{:08x}:{:02x}:{:02x}.{:x}",
                self.domain, self.bus, self.device, self.function
            ),
        ]
    }
}

impl fmt::Display for PciBusId {
    /// NVML's form: `00000000:3B:00.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:08X}:{:02X}:{:02X}.{:X}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl fmt::Debug for PciBusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PciBusId({self})")
    }
}

impl Serialize for PciBusId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciBusId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PciBusId::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid PCI bus id {s:?}")))
    }
}

/// One device id, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceSelector {
    /// NVML index.
    Index(u32),
    /// `GPU-...`: a whole UUID or a prefix of one, lower-cased.
    Uuid(String),
    /// A PCI bus id.
    BusId(PciBusId),
    /// `<gpu>:<mig>`: MIG device `mig` of GPU index `gpu`.
    MigIndex {
        /// GPU index.
        gpu: u32,
        /// MIG device index within the GPU.
        mig: u32,
    },
    /// `MIG-<uuid>` (modern MIG UUID, or a prefix), lower-cased.
    MigUuid(String),
    /// `MIG-GPU-<uuid>/<gi>/<ci>` (the pre-R470 form).
    MigInstance {
        /// `GPU-...` of the parent, lower-cased.
        gpu_uuid: String,
        /// GPU instance id.
        gi: u32,
        /// Compute instance id.
        ci: u32,
    },
}

fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

impl DeviceSelector {
    /// Parses one id (already trimmed); `None` when it is no known form.
    pub fn parse(id: &str) -> Option<DeviceSelector> {
        if let Some(rest) = strip_prefix_ci(id, "MIG-GPU-") {
            let mut parts = rest.split('/');
            let uuid = parts.next()?;
            let gi = decimal(parts.next()?)?;
            let ci = decimal(parts.next()?)?;
            if parts.next().is_some() || uuid.is_empty() || uuid.contains(char::is_whitespace) {
                return None;
            }
            return Some(DeviceSelector::MigInstance {
                gpu_uuid: format!("gpu-{}", uuid.to_ascii_lowercase()),
                gi,
                ci,
            });
        }
        if strip_prefix_ci(id, "MIG-").is_some() {
            return valid_uuid_text(id).then(|| DeviceSelector::MigUuid(id.to_ascii_lowercase()));
        }
        if strip_prefix_ci(id, "GPU-").is_some() {
            return valid_uuid_text(id).then(|| DeviceSelector::Uuid(id.to_ascii_lowercase()));
        }
        if let Some(i) = decimal(id) {
            return Some(DeviceSelector::Index(i));
        }
        if let Some((gpu, mig)) = id.split_once(':') {
            if let (Some(gpu), Some(mig)) = (decimal(gpu), decimal(mig)) {
                return Some(DeviceSelector::MigIndex { gpu, mig });
            }
        }
        PciBusId::parse(id).map(DeviceSelector::BusId)
    }

    /// True for the MIG forms.
    pub fn is_mig(&self) -> bool {
        matches!(
            self,
            DeviceSelector::MigIndex { .. }
                | DeviceSelector::MigUuid(_)
                | DeviceSelector::MigInstance { .. }
        )
    }
}

fn valid_uuid_text(id: &str) -> bool {
    id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Which input a device list came from; it decides the wording of refusals
/// (v1 inputs keep v1's `invalid device: <id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceSource {
    /// `NVIDIA_VISIBLE_DEVICES`.
    VisibleDevices,
    /// A configured `swarm-resource` variable, e.g. `DOCKER_RESOURCE_GPU`.
    SwarmResource(String),
    /// The v1 label `com.nvidia.volumes.needed` (all GPUs).
    V1Label,
    /// A legacy CUDA image without `NVIDIA_VISIBLE_DEVICES` (all GPUs).
    LegacyImage,
    /// v1's `NV_GPU`.
    NvGpu,
    /// v1's REST query `dev=`.
    V1Query,
    /// The device plugin's mounts under `/var/run/nvidia-container-devices`.
    VolumeMounts,
    /// A CDI annotation (its key).
    CdiAnnotation(String),
}

impl DeviceSource {
    /// True for the v1 inputs whose messages keep v1's text.
    pub fn is_v1(&self) -> bool {
        matches!(self, DeviceSource::NvGpu | DeviceSource::V1Query)
    }
}

impl fmt::Display for DeviceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSource::VisibleDevices => f.write_str("NVIDIA_VISIBLE_DEVICES"),
            DeviceSource::SwarmResource(name) => f.write_str(name),
            DeviceSource::V1Label => f.write_str("label com.nvidia.volumes.needed"),
            DeviceSource::LegacyImage => f.write_str("CUDA_VERSION"),
            DeviceSource::NvGpu => f.write_str("NV_GPU"),
            DeviceSource::V1Query => f.write_str("dev="),
            DeviceSource::VolumeMounts => {
                write!(
                    f,
                    "the volume mounts under {}",
                    crate::sources::VOLUME_MOUNT_ROOT
                )
            }
            DeviceSource::CdiAnnotation(key) => write!(f, "annotation {key}"),
        }
    }
}

/// One device id: as written, and parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceId {
    /// The id as the user wrote it (trimmed); used in messages.
    pub text: String,
    /// The parsed form.
    pub selector: DeviceSelector,
}

impl DeviceId {
    /// Parses one id; `None` when it is no known form.
    pub fn parse(text: &str) -> Option<DeviceId> {
        DeviceSelector::parse(text).map(|selector| DeviceId {
            text: text.to_owned(),
            selector,
        })
    }
}

/// Which devices a container asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceRequest {
    /// Not a GPU container (unset, empty or `void`): the plan is empty.
    NoGpu,
    /// `none`: driver files and control nodes, no GPU.
    DriverOnly,
    /// `all`.
    All,
    /// A list of ids (never empty).
    Devices(Vec<DeviceId>),
}

/// The resolved selection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Whole GPUs, by index.
    pub gpus: BTreeSet<u32>,
    /// MIG devices, as (GPU index, MIG index).
    pub migs: BTreeSet<(u32, u32)>,
}

impl Selection {
    /// Indexes of the GPUs whose node the container needs: whole GPUs and
    /// MIG parents, ascending.
    pub fn parents(&self) -> BTreeSet<u32> {
        let mut all = self.gpus.clone();
        all.extend(self.migs.iter().map(|(g, _)| *g));
        all
    }
}

/// Resolves a request against the host.
pub fn resolve(
    request: &DeviceRequest,
    source: &DeviceSource,
    inv: &Inventory,
) -> Result<Selection, Refusal> {
    let mut sel = Selection::default();
    match request {
        DeviceRequest::NoGpu | DeviceRequest::DriverOnly => {}
        DeviceRequest::All => {
            for g in &inv.gpus {
                sel.gpus.insert(g.index);
                sel.migs.extend(g.mig.iter().map(|m| (g.index, m.index)));
            }
        }
        DeviceRequest::Devices(list) => {
            for id in list {
                resolve_one(&id.selector, &id.text, source, inv, &mut sel)?;
            }
        }
    }
    Ok(sel)
}

fn unknown(id: &str, source: &DeviceSource, inv: &Inventory, mig: bool) -> Refusal {
    let mut gpus: Vec<u32> = inv.gpus.iter().map(|g| g.index).collect();
    gpus.sort_unstable();
    gpus.dedup();
    Refusal::UnknownDevice {
        id: id.to_owned(),
        input: source.clone(),
        mig,
        gpus,
    }
}

fn unique_prefix<'a, T>(
    id: &str,
    prefix: &str,
    source: &DeviceSource,
    inv: &Inventory,
    candidates: impl Iterator<Item = (&'a str, T)> + Clone,
    mig: bool,
) -> Result<T, Refusal> {
    if let Some((_, t)) = candidates
        .clone()
        .find(|(u, _)| u.eq_ignore_ascii_case(prefix))
    {
        return Ok(t);
    }
    let mut matches = candidates.filter(|(u, _)| {
        u.len() >= prefix.len()
            && u.is_char_boundary(prefix.len())
            && u[..prefix.len()].eq_ignore_ascii_case(prefix)
    });
    let Some((first_uuid, first)) = matches.next() else {
        return Err(unknown(id, source, inv, mig));
    };
    if let Some((second_uuid, _)) = matches.next() {
        return Err(Refusal::AmbiguousDevice {
            id: id.to_owned(),
            input: source.clone(),
            matches: vec![first_uuid.to_owned(), second_uuid.to_owned()],
        });
    }
    Ok(first)
}

fn gpus_sorted(inv: &Inventory) -> Vec<&Gpu> {
    let mut gpus: Vec<&Gpu> = inv.gpus.iter().collect();
    gpus.sort_by_key(|g| g.index);
    gpus
}

fn need_mig<'a>(
    id: &str,
    source: &DeviceSource,
    inv: &'a Inventory,
    gpu: Option<&'a Gpu>,
) -> Result<(), Refusal> {
    if !inv.has_mig() {
        return Err(Refusal::NoMig {
            id: id.to_owned(),
            input: source.clone(),
            gpu: None,
        });
    }
    if let Some(g) = gpu {
        if !g.mig_enabled && g.mig.is_empty() {
            return Err(Refusal::NoMig {
                id: id.to_owned(),
                input: source.clone(),
                gpu: Some(g.index),
            });
        }
    }
    Ok(())
}

fn resolve_one(
    s: &DeviceSelector,
    id: &str,
    source: &DeviceSource,
    inv: &Inventory,
    sel: &mut Selection,
) -> Result<(), Refusal> {
    match s {
        DeviceSelector::Index(i) => {
            let g = inv.gpu(*i).ok_or_else(|| unknown(id, source, inv, false))?;
            sel.gpus.insert(g.index);
        }
        DeviceSelector::Uuid(prefix) => {
            let gpus = gpus_sorted(inv);
            let index = unique_prefix(
                id,
                prefix,
                source,
                inv,
                gpus.iter().map(|g| (g.uuid.as_str(), g.index)),
                false,
            )?;
            sel.gpus.insert(index);
        }
        DeviceSelector::BusId(bus) => {
            let g = inv
                .gpus
                .iter()
                .find(|g| g.bus_id == *bus)
                .ok_or_else(|| unknown(id, source, inv, false))?;
            sel.gpus.insert(g.index);
        }
        DeviceSelector::MigIndex { gpu, mig } => {
            let parent = inv.gpu(*gpu);
            need_mig(id, source, inv, parent)?;
            let parent = parent.ok_or_else(|| unknown(id, source, inv, true))?;
            let m = parent
                .mig
                .iter()
                .find(|m| m.index == *mig)
                .ok_or_else(|| unknown(id, source, inv, true))?;
            sel.migs.insert((parent.index, m.index));
        }
        DeviceSelector::MigUuid(prefix) => {
            need_mig(id, source, inv, None)?;
            let gpus = gpus_sorted(inv);
            let all: Vec<(&str, (u32, u32))> = gpus
                .iter()
                .flat_map(|g| {
                    g.mig
                        .iter()
                        .map(move |m: &MigDevice| (m.uuid.as_str(), (g.index, m.index)))
                })
                .collect();
            let found = unique_prefix(id, prefix, source, inv, all.iter().copied(), true)?;
            sel.migs.insert(found);
        }
        DeviceSelector::MigInstance { gpu_uuid, gi, ci } => {
            need_mig(id, source, inv, None)?;
            let parent = inv
                .gpus
                .iter()
                .find(|g| g.uuid.eq_ignore_ascii_case(gpu_uuid))
                .ok_or_else(|| unknown(id, source, inv, true))?;
            need_mig(id, source, inv, Some(parent))?;
            let m = parent
                .mig
                .iter()
                .find(|m| m.gi == *gi && m.ci == *ci)
                .ok_or_else(|| unknown(id, source, inv, true))?;
            sel.migs.insert((parent.index, m.index));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Version;
    use proptest::prelude::*;

    fn gpu(index: u32, uuid: &str, bus: &str) -> Gpu {
        Gpu {
            index,
            minor: index,
            uuid: uuid.into(),
            bus_id: PciBusId::parse(bus).unwrap(),
            brand: "Tesla".into(),
            arch: Version::parse("8.0").unwrap(),
            model: "A100".into(),
            mig_enabled: false,
            mig: vec![],
        }
    }

    fn host() -> Inventory {
        let mut inv = Inventory::new(Version::parse("535.104.05").unwrap());
        inv.gpus = vec![
            gpu(
                0,
                "GPU-8d8a3b52-1ac4-e6e4-d8d0-4b3e3b5c0c1a",
                "00000000:04:00.0",
            ),
            gpu(
                1,
                "GPU-8d9f0000-1111-2222-3333-444455556666",
                "00000000:05:00.0",
            ),
            gpu(
                2,
                "GPU-abcdef00-1111-2222-3333-444455556666",
                "0001:8A:00.0",
            ),
        ];
        inv
    }

    fn mig_host() -> Inventory {
        let mut inv = host();
        inv.devices.caps_major = Some(509);
        inv.gpus[1].mig_enabled = true;
        inv.gpus[1].mig = vec![
            MigDevice {
                index: 0,
                uuid: "MIG-11111111-aaaa-bbbb-cccc-000000000000".into(),
                gi: 1,
                ci: 0,
                gi_caps_minor: 12,
                ci_caps_minor: 13,
            },
            MigDevice {
                index: 1,
                uuid: "MIG-22222222-aaaa-bbbb-cccc-000000000000".into(),
                gi: 2,
                ci: 0,
                gi_caps_minor: 21,
                ci_caps_minor: 22,
            },
        ];
        inv
    }

    fn select(inv: &Inventory, ids: &[&str]) -> Result<Selection, Refusal> {
        let ids = ids.iter().map(|i| DeviceId::parse(i).unwrap()).collect();
        resolve(
            &DeviceRequest::Devices(ids),
            &DeviceSource::VisibleDevices,
            inv,
        )
    }

    fn gpus(sel: &Selection) -> Vec<u32> {
        sel.gpus.iter().copied().collect()
    }

    #[test]
    fn parse_forms() {
        use DeviceSelector::*;
        assert_eq!(DeviceSelector::parse("0"), Some(Index(0)));
        assert_eq!(DeviceSelector::parse("007"), Some(Index(7)));
        assert_eq!(
            DeviceSelector::parse("GPU-8D8A"),
            Some(Uuid("gpu-8d8a".into()))
        );
        assert_eq!(
            DeviceSelector::parse("gpu-8d8a"),
            Some(Uuid("gpu-8d8a".into()))
        );
        assert_eq!(
            DeviceSelector::parse("0000:04:00.0"),
            Some(BusId(PciBusId::parse("4:0.0").unwrap()))
        );
        assert_eq!(
            DeviceSelector::parse("00000000:04:00.0"),
            DeviceSelector::parse("04:00.0")
        );
        assert_eq!(
            DeviceSelector::parse("0:1"),
            Some(MigIndex { gpu: 0, mig: 1 })
        );
        assert_eq!(
            DeviceSelector::parse("MIG-1111"),
            Some(MigUuid("mig-1111".into()))
        );
        assert_eq!(
            DeviceSelector::parse("MIG-GPU-8d8a3b52-1ac4/1/0"),
            Some(MigInstance {
                gpu_uuid: "gpu-8d8a3b52-1ac4".into(),
                gi: 1,
                ci: 0
            })
        );
        for bad in [
            "",
            "x",
            "-1",
            "+1",
            "1.5",
            "GPU-a b",
            "MIG-GPU-x/1",
            "MIG-GPU-/1/0",
            "MIG-GPU-x/1/0/2",
            "0:",
            ":1",
            "4:00.8",
            "4:20.0",
            "123456789:04:00.0",
            "0:0:04:00.0",
            "99999999999",
        ] {
            assert_eq!(DeviceSelector::parse(bad), None, "{bad:?}");
        }
        assert!(DeviceSelector::parse("0:1").unwrap().is_mig());
        assert!(!DeviceSelector::parse("0").unwrap().is_mig());
    }

    #[test]
    fn bus_ids_normalise_domain_width() {
        let a = PciBusId::parse("0000:8a:00.0").unwrap();
        let b = PciBusId::parse("00000000:8A:00.0").unwrap();
        let c = PciBusId::parse("8a:00.0").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.to_string(), "00000000:8A:00.0");
        assert_eq!(
            a.proc_names(),
            ["0000:8a:00.0".to_string(), "00000000:8a:00.0".to_string()]
        );
        assert_eq!(
            PciBusId::parse("10000:01:1f.7").unwrap().proc_names()[0],
            "10000:01:1f.7"
        );
    }

    #[test]
    fn resolves_every_form_in_index_order() {
        let inv = host();
        assert_eq!(gpus(&select(&inv, &["2", "0"]).unwrap()), [0, 2]);
        assert_eq!(
            gpus(
                &select(
                    &inv,
                    &["0", "0", "GPU-8D8A3B52-1ac4-e6e4-d8d0-4b3e3b5c0c1a"]
                )
                .unwrap()
            ),
            [0]
        );
        assert_eq!(gpus(&select(&inv, &["GPU-8d8a"]).unwrap()), [0]);
        assert_eq!(gpus(&select(&inv, &["gpu-ab"]).unwrap()), [2]);
        assert_eq!(gpus(&select(&inv, &["0001:8a:00.0"]).unwrap()), [2]);
        assert_eq!(
            gpus(&select(&inv, &["00000001:8A:00.0", "5:00.0"]).unwrap()),
            [1, 2]
        );
        let all = resolve(&DeviceRequest::All, &DeviceSource::VisibleDevices, &inv).unwrap();
        assert_eq!(gpus(&all), [0, 1, 2]);
        let none = resolve(
            &DeviceRequest::DriverOnly,
            &DeviceSource::VisibleDevices,
            &inv,
        )
        .unwrap();
        assert!(none.gpus.is_empty() && none.migs.is_empty());
    }

    #[test]
    fn unknown_and_ambiguous() {
        let inv = host();
        assert!(matches!(
            select(&inv, &["3"]),
            Err(Refusal::UnknownDevice { mig: false, .. })
        ));
        assert!(matches!(
            select(&inv, &["GPU-ff"]),
            Err(Refusal::UnknownDevice { .. })
        ));
        assert!(matches!(
            select(&inv, &["0000:09:00.0"]),
            Err(Refusal::UnknownDevice { .. })
        ));
        match select(&inv, &["GPU-8d"]) {
            Err(Refusal::AmbiguousDevice { matches, .. }) => {
                assert_eq!(matches[0], "GPU-8d8a3b52-1ac4-e6e4-d8d0-4b3e3b5c0c1a");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mig_forms() {
        let plain = host();
        for id in [
            "1:0",
            "MIG-1111",
            "MIG-GPU-8d9f0000-1111-2222-3333-444455556666/1/0",
        ] {
            assert!(
                matches!(select(&plain, &[id]), Err(Refusal::NoMig { gpu: None, .. })),
                "{id}"
            );
        }
        let inv = mig_host();
        assert!(matches!(
            select(&inv, &["0:0"]),
            Err(Refusal::NoMig { gpu: Some(0), .. })
        ));
        let s = select(
            &inv,
            &[
                "1:1",
                "MIG-1111",
                "MIG-GPU-8d9f0000-1111-2222-3333-444455556666/2/0",
            ],
        )
        .unwrap();
        assert_eq!(s.migs.iter().copied().collect::<Vec<_>>(), [(1, 0), (1, 1)]);
        assert!(s.gpus.is_empty());
        assert_eq!(s.parents().into_iter().collect::<Vec<_>>(), [1]);
        assert!(matches!(
            select(&inv, &["1:5"]),
            Err(Refusal::UnknownDevice { mig: true, .. })
        ));
        assert!(matches!(
            select(&inv, &["7:0"]),
            Err(Refusal::UnknownDevice { mig: true, .. })
        ));
        assert!(matches!(
            select(&inv, &["MIG-"]),
            Err(Refusal::AmbiguousDevice { .. })
        ));
        let all = resolve(&DeviceRequest::All, &DeviceSource::VisibleDevices, &inv).unwrap();
        assert_eq!(all.migs.len(), 2);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = DeviceSelector::parse(&s);
            let _ = PciBusId::parse(&s);
        }

        #[test]
        fn parse_and_resolve_never_panic(s in "(GPU-|MIG-|MIG-GPU-|[0-9a-fA-F]{1,9}|:|\\.|/|-){0,8}") {
            if let Some(id) = DeviceId::parse(&s) {
                let _ = resolve(&DeviceRequest::Devices(vec![id.clone()]), &DeviceSource::VisibleDevices, &mig_host());
                let _ = resolve(&DeviceRequest::Devices(vec![id]), &DeviceSource::NvGpu, &host());
            }
        }

        #[test]
        fn bus_id_round_trip(domain in any::<u32>(), bus in any::<u8>(), dev in 0u8..32, func in 0u8..8) {
            let b = PciBusId { domain, bus, device: dev, function: func };
            prop_assert_eq!(PciBusId::parse(&b.to_string()), Some(b));
            prop_assert_eq!(PciBusId::parse(&b.proc_names()[1]), Some(b));
        }
    }
}
