//! The request: what a container asks for, parsed once from its environment,
//! annotations (image labels recorded by the runtime), or v1's inputs.
//!
//! Semantics follow the toolkit hook (docs/toolkit.md §1) and v1
//! (docs/v1.md §1, §2, §4). Where they were silent:
//! - Duplicate `K=V` entries in `process.env`: the last wins (the toolkit
//!   builds a map from the list in order).
//! - `all`, `none`, `void` are matched ignoring ASCII case; `void` anywhere
//!   wins, then `all` anywhere; `none` together with ids contributes nothing.
//! - A v1-labelled image (`com.nvidia.volumes.needed`) is a GPU container even
//!   without `NVIDIA_VISIBLE_DEVICES` (all GPUs unless the variable narrows
//!   them) and, like a legacy image, defaults to every supported capability.
//! - The unprivileged knob gates every implicit device request too (legacy
//!   image, v1 label): an unprivileged container then gets no GPU.
//! - `NVIDIA_DISABLE_REQUIRE` also skips the v1 label check.
//! - A request that is no GPU container is returned without checking
//!   capabilities or requirements (the hook does nothing for it).
//! - The device plugin's sources ([`crate::sources`]) come first, in the
//!   toolkit's order: CDI annotations (only when the caller reads them: the
//!   runc wrapper; the prestart hook leaves them to the engine, as the
//!   toolkit's hook does), then volume mounts (when
//!   `accept-nvidia-visible-devices-as-volume-mounts`), then the variables.
//!   Neither is gated by `accept-nvidia-visible-devices-envvar-when-unprivileged`:
//!   a pod's user can set a variable but not these. `NVIDIA_VISIBLE_DEVICES=void`
//!   still means no GPU: it is what a CDI spec of this project sets, so the
//!   engine has already given the devices.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::capability::{Capabilities, Capability, CapabilityError};
use crate::compat::CompatLib;
use crate::config::Config;
use crate::device::{DeviceId, DeviceRequest, DeviceSource};
use crate::extra_devices::ExtraRequest;
use crate::files::RootfsFlavor;
use crate::refusal::Refusal;
use crate::require::{parse_disable_require, parse_v1_cuda_label, Requirement};
use crate::sources::{self, OciMount};
use crate::v1::V1Volume;
use crate::version::Version;

/// Image label (recorded as an annotation): v1 volumes an image needs.
pub const LABEL_VOLUMES_NEEDED: &str = "com.nvidia.volumes.needed";
/// Image label (recorded as an annotation): the image's CUDA `major.minor`.
pub const LABEL_CUDA_VERSION: &str = "com.nvidia.cuda.version";

/// `NVIDIA_VISIBLE_DEVICES`.
pub const ENV_VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";
/// `NVIDIA_DRIVER_CAPABILITIES`.
pub const ENV_DRIVER_CAPABILITIES: &str = "NVIDIA_DRIVER_CAPABILITIES";
/// `NVIDIA_DISABLE_REQUIRE`.
pub const ENV_DISABLE_REQUIRE: &str = "NVIDIA_DISABLE_REQUIRE";
/// Prefix of the requirement variables.
pub const ENV_REQUIRE_PREFIX: &str = "NVIDIA_REQUIRE_";
/// The one `NVIDIA_REQUIRE_*` variable that is not a requirement.
pub const ENV_REQUIRE_JETPACK: &str = "NVIDIA_REQUIRE_JETPACK";
/// `CUDA_VERSION` (a legacy image has it without `NVIDIA_REQUIRE_CUDA`).
pub const ENV_CUDA_VERSION: &str = "CUDA_VERSION";
/// `NVIDIA_REQUIRE_CUDA`.
pub const ENV_REQUIRE_CUDA: &str = "NVIDIA_REQUIRE_CUDA";

/// A container's environment, as a map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// From OCI `process.env` entries (`K=V`). Entries without `=` are
    /// ignored; for duplicate keys the last wins.
    pub fn from_oci<I, S>(entries: I) -> Env
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut vars = BTreeMap::new();
        for e in entries {
            if let Some((k, v)) = e.as_ref().split_once('=') {
                vars.insert(k.to_owned(), v.to_owned());
            }
        }
        Env { vars }
    }

    /// From `(key, value)` pairs; for duplicate keys the last wins.
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// Every variable, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// How the driver files reach the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// The plan lists every bind mount (hook, runc wrapper, CDI).
    Bind,
    /// v1: the files come in the Docker volume `nvidia_driver_<version>`,
    /// which Docker mounts; the plan lists devices and the volume only.
    V1Volume,
}

/// The image's v1 `com.nvidia.cuda.version` label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1CudaLabel {
    /// As written (v1 prints it verbatim).
    pub text: String,
    /// `major.minor` as v1's `%d.%d` reads it.
    pub major_minor: (u64, u64),
}

/// Something the caller should log; never a reason to refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Warning {
    /// The container is unprivileged and the configuration does not accept
    /// device requests from unprivileged containers; the request was ignored.
    DevicesIgnoredUnprivileged {
        /// Where the request came from.
        input: DeviceSource,
    },
    /// Mounts under `/var/run/nvidia-container-devices` that name nothing
    /// this project serves (IMEX channels, another CDI kind).
    IgnoredDeviceMounts {
        /// Their destinations.
        destinations: Vec<String>,
    },
    /// `com.nvidia.volumes.needed` names a volume v1 did not know (v1
    /// ignored it silently).
    UnknownV1Volume {
        /// The name.
        name: String,
    },
}

/// What a container asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The devices.
    pub devices: DeviceRequest,
    /// Where the device request came from (wording of refusals).
    pub device_source: DeviceSource,
    /// The driver capabilities.
    pub capabilities: Capabilities,
    /// Requirements to check (empty when disabled).
    pub requirements: Vec<Requirement>,
    /// The v1 label check (absent when disabled or not labelled).
    pub v1_cuda_label: Option<V1CudaLabel>,
    /// v1 volumes (from the label or the `vol=` query).
    pub v1_volumes: BTreeSet<V1Volume>,
    /// How the driver files are delivered.
    pub delivery: Delivery,
    /// The rootfs flavour: where libraries go. A plan input, decided by the
    /// caller that can look at the rootfs.
    pub rootfs: RootfsFlavor,
    /// A CUDA forward-compatibility library found in the image, if the caller
    /// looked (see [`Request::with_compat`]).
    pub compat: Option<CompatLib>,
    /// Things to log.
    pub warnings: Vec<Warning>,
    /// IMEX channels and gated devices asked for ([`crate::extra_devices`]).
    #[serde(default)]
    pub extra: ExtraRequest,
}

/// True when the OCI `process.capabilities.bounding` list holds
/// `CAP_SYS_ADMIN`, the toolkit's definition of privileged.
pub fn is_privileged<S: AsRef<str>>(bounding: &[S]) -> bool {
    bounding.iter().any(|c| c.as_ref() == "CAP_SYS_ADMIN")
}

fn split_ids(value: &str, seps: &[char]) -> Vec<String> {
    value
        .split(seps)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a device list (already split). `Ok(None)` means no GPU container.
fn parse_device_list(items: &[String], source: &DeviceSource) -> Result<DeviceRequest, Refusal> {
    if items.is_empty() || items.iter().any(|i| i.eq_ignore_ascii_case("void")) {
        return Ok(DeviceRequest::NoGpu);
    }
    if items.iter().any(|i| i.eq_ignore_ascii_case("all")) {
        return Ok(DeviceRequest::All);
    }
    let mut ids = Vec::new();
    for item in items.iter().filter(|i| !i.eq_ignore_ascii_case("none")) {
        let id = DeviceId::parse(item).ok_or_else(|| Refusal::BadDeviceId {
            id: item.clone(),
            input: source.clone(),
        })?;
        ids.push(id);
    }
    if ids.is_empty() {
        return Ok(DeviceRequest::DriverOnly);
    }
    Ok(DeviceRequest::Devices(ids))
}

fn parse_capabilities(value: &str, supported: Capabilities) -> Result<Capabilities, Refusal> {
    Capabilities::parse(value, supported).map_err(|e| match e {
        CapabilityError::Unknown(name) => Refusal::UnknownCapability {
            name,
            value: value.to_owned(),
        },
        CapabilityError::Unsupported(capability) => Refusal::UnsupportedCapability {
            capability,
            supported,
        },
    })
}

fn parse_v1_label(labels: &BTreeMap<String, String>) -> Result<Option<V1CudaLabel>, Refusal> {
    match labels.get(LABEL_CUDA_VERSION).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(text) => {
            let major_minor = parse_v1_cuda_label(text).ok_or_else(|| Refusal::BadCudaLabel {
                label: text.to_owned(),
            })?;
            Ok(Some(V1CudaLabel {
                text: text.to_owned(),
                major_minor,
            }))
        }
    }
}

/// The volumes a v1 label names; unknown names become warnings.
fn label_volumes(
    labels: &BTreeMap<String, String>,
    warnings: &mut Vec<Warning>,
) -> Option<BTreeSet<V1Volume>> {
    let value = labels.get(LABEL_VOLUMES_NEEDED)?;
    if value.trim().is_empty() {
        return None;
    }
    let mut set = BTreeSet::new();
    for name in value.split_whitespace() {
        match V1Volume::from_name(name) {
            Some(v) => {
                set.insert(v);
            }
            None => warnings.push(Warning::UnknownV1Volume {
                name: name.to_owned(),
            }),
        }
    }
    Some(set)
}

/// Whether `nvidia-docker run` gives an image GPUs: the v1 label
/// `com.nvidia.volumes.needed`, or `NVIDIA_VISIBLE_DEVICES` (other than empty
/// or `void`) in its environment, as modern CUDA images have.
pub fn is_v1_gpu_image(labels: &BTreeMap<String, String>, image_env: &Env) -> bool {
    let labelled = labels
        .get(LABEL_VOLUMES_NEEDED)
        .is_some_and(|v| !v.trim().is_empty());
    labelled
        || image_env.get(ENV_VISIBLE_DEVICES).is_some_and(|v| {
            let v = v.trim();
            !v.is_empty() && !v.eq_ignore_ascii_case("void")
        })
}

/// `NVIDIA_DISABLE_REQUIRE` in the environment or `disable-require` in the
/// configuration: no requirement is checked.
fn requirements_disabled(env: &Env, config: &Config) -> bool {
    config.disable_require
        || env
            .get(ENV_DISABLE_REQUIRE)
            .is_some_and(parse_disable_require)
}

/// An image's requirements: every `NVIDIA_REQUIRE_*` but `_JETPACK`, and for
/// a legacy image (`CUDA_VERSION` without `NVIDIA_REQUIRE_CUDA`)
/// `cuda>=<major.minor>`; none when disabled.
fn image_requirements(env: &Env, config: &Config) -> Result<Vec<Requirement>, Refusal> {
    let mut requirements = Vec::new();
    if requirements_disabled(env, config) {
        return Ok(requirements);
    }
    for (name, value) in env.iter() {
        if name.starts_with(ENV_REQUIRE_PREFIX) && name != ENV_REQUIRE_JETPACK {
            let r = Requirement::parse(name, value).map_err(|error| Refusal::BadRequirement {
                variable: name.to_owned(),
                value: value.to_owned(),
                error,
            })?;
            requirements.push(r);
        }
    }
    if env.get(ENV_CUDA_VERSION).is_some() && env.get(ENV_REQUIRE_CUDA).is_none() {
        let value = env.get(ENV_CUDA_VERSION).unwrap_or_default();
        let v = Version::parse(value.trim()).map_err(|_| Refusal::BadCudaVersion {
            value: value.to_owned(),
        })?;
        requirements.push(Requirement::legacy_cuda(&v));
    }
    Ok(requirements)
}

/// The capabilities v1's driver volume carried (no display, no ngx).
fn v1_capabilities(supported: Capabilities) -> Capabilities {
    [
        Capability::Utility,
        Capability::Compute,
        Capability::Video,
        Capability::Graphics,
        Capability::Compat32,
    ]
    .into_iter()
    .collect::<Capabilities>()
    .intersection(supported)
}

/// What an OCI container shows of its request, beyond its environment.
#[derive(Debug, Clone, Copy)]
pub struct ContainerInput<'a> {
    /// `process.env`.
    pub env: &'a Env,
    /// The spec's annotations (image labels, CDI annotations).
    pub annotations: &'a BTreeMap<String, String>,
    /// The spec's mounts.
    pub mounts: &'a [OciMount],
    /// [`is_privileged`].
    pub privileged: bool,
    /// Read CDI names ([`crate::sources`]): annotations, and
    /// `nvidia.com/gpu=<name>` items in the variables, answered from the
    /// inventory (the toolkit's `jit-cdi`). The runc wrapper does unless its
    /// mode is `legacy`; the prestart hook does not.
    pub cdi_names: bool,
}

/// The device list of the device plugin's sources, if one has any:
/// annotations first, then volume mounts.
fn plugin_devices(
    input: &ContainerInput<'_>,
    config: &Config,
    warnings: &mut Vec<Warning>,
) -> Result<Option<(DeviceSource, DeviceRequest)>, Refusal> {
    if input.cdi_names {
        let mut names = Vec::new();
        let mut first_key = None;
        for (key, value) in sources::cdi_annotations(input.annotations, &config.annotation_prefixes)
        {
            let source = DeviceSource::CdiAnnotation(key.to_owned());
            for name in split_ids(value, &[',']) {
                let (kind, device) =
                    sources::split_cdi_name(&name).ok_or_else(|| Refusal::BadCdiName {
                        name: name.clone(),
                        input: source.clone(),
                    })?;
                if kind != config.cdi_kind {
                    return Err(Refusal::ForeignCdiKind {
                        name: name.clone(),
                        input: source,
                        kind: config.cdi_kind.clone(),
                    });
                }
                first_key.get_or_insert_with(|| key.to_owned());
                names.push(device.to_owned());
            }
        }
        if let Some(key) = first_key {
            let source = DeviceSource::CdiAnnotation(key);
            let devices = parse_device_list(&names, &source)?;
            return Ok(Some((source, devices)));
        }
    }
    if config.accept_devices_as_volume_mounts {
        let found = sources::devices_from_mounts(input.mounts, &config.cdi_kind);
        if !found.ignored.is_empty() {
            warnings.push(Warning::IgnoredDeviceMounts {
                destinations: found.ignored,
            });
        }
        if !found.ids.is_empty() {
            let source = DeviceSource::VolumeMounts;
            let devices = parse_device_list(&found.ids, &source)?;
            return Ok(Some((source, devices)));
        }
    }
    Ok(None)
}

/// `nvidia.com/gpu=<name>` items of a variable as `<name>` (jit-cdi: the
/// inventory answers them); other kinds refused, plain ids kept.
fn cdi_names_to_ids(
    items: Vec<String>,
    source: &DeviceSource,
    config: &Config,
) -> Result<Vec<String>, Refusal> {
    items
        .into_iter()
        .map(|item| match sources::split_cdi_name(&item) {
            Some((kind, name)) if kind == config.cdi_kind => Ok(name.to_owned()),
            Some(_) => Err(Refusal::ForeignCdiKind {
                name: item.clone(),
                input: source.clone(),
                kind: config.cdi_kind.clone(),
            }),
            None => Ok(item),
        })
        .collect()
}

impl Request {
    fn no_gpu(
        source: DeviceSource,
        rootfs: RootfsFlavor,
        delivery: Delivery,
        warnings: Vec<Warning>,
    ) -> Request {
        Request {
            devices: DeviceRequest::NoGpu,
            device_source: source,
            capabilities: Capabilities::empty(),
            requirements: Vec::new(),
            v1_cuda_label: None,
            v1_volumes: BTreeSet::new(),
            delivery,
            rootfs,
            compat: None,
            warnings,
            extra: ExtraRequest::default(),
        }
    }

    /// True when this is a GPU container at all.
    pub fn is_gpu(&self) -> bool {
        self.devices != DeviceRequest::NoGpu
    }

    /// Records the CUDA forward-compatibility library the caller found in
    /// the image (`/usr/local/cuda/compat/libcuda.so.*`).
    pub fn with_compat(mut self, compat: CompatLib) -> Request {
        self.compat = Some(compat);
        self
    }

    /// The request of an OCI container (hook, runc wrapper): its
    /// environment, its annotations (image labels recorded by the runtime),
    /// whether it is privileged ([`is_privileged`]), and the rootfs flavour.
    pub fn from_container(
        env: &Env,
        annotations: &BTreeMap<String, String>,
        privileged: bool,
        rootfs: RootfsFlavor,
        config: &Config,
    ) -> Result<Request, Refusal> {
        let input = ContainerInput {
            env,
            annotations,
            mounts: &[],
            privileged,
            cdi_names: false,
        };
        Request::from_input(&input, rootfs, config)
    }

    /// The request of an OCI container with every source the device plugin
    /// uses (module docs): annotations, volume mounts, then variables.
    pub fn from_input(
        input: &ContainerInput<'_>,
        rootfs: RootfsFlavor,
        config: &Config,
    ) -> Result<Request, Refusal> {
        let (env, annotations, privileged) = (input.env, input.annotations, input.privileged);
        let mut warnings = Vec::new();
        let legacy = env.get(ENV_CUDA_VERSION).is_some() && env.get(ENV_REQUIRE_CUDA).is_none();
        let v1_volumes = label_volumes(annotations, &mut warnings);
        let labelled = v1_volumes.is_some();
        let served_by_cdi = env.get(ENV_VISIBLE_DEVICES).is_some_and(|v| {
            split_ids(v, &[','])
                .iter()
                .any(|i| i.eq_ignore_ascii_case("void"))
        });
        let plugin = if served_by_cdi {
            None
        } else {
            plugin_devices(input, config, &mut warnings)?
        };

        // Devices: the first configured swarm-resource variable that is set,
        // else NVIDIA_VISIBLE_DEVICES, else the image's implicit `all`.
        let explicit = config
            .swarm_resource
            .iter()
            .find_map(|name| {
                env.get(name)
                    .map(|v| (DeviceSource::SwarmResource(name.clone()), v))
            })
            .or_else(|| {
                env.get(ENV_VISIBLE_DEVICES)
                    .map(|v| (DeviceSource::VisibleDevices, v))
            });
        let (source, devices) = match (plugin, explicit) {
            (Some(found), _) => found,
            (None, Some((DeviceSource::VisibleDevices, value)))
                if value.trim().trim_end_matches('/') == sources::VOLUME_MOUNT_ROOT =>
            {
                // The volume-mounts strategy without (accepted) mounts.
                if !config.accept_devices_as_volume_mounts {
                    return Err(Refusal::VolumeMountsNotAccepted);
                }
                (DeviceSource::VolumeMounts, DeviceRequest::NoGpu)
            }
            (None, Some((source, value))) => {
                let mut items = split_ids(value, &[',']);
                if input.cdi_names {
                    items = cdi_names_to_ids(items, &source, config)?;
                }
                let devices = parse_device_list(&items, &source)?;
                (source, devices)
            }
            (None, None) if legacy => (DeviceSource::LegacyImage, DeviceRequest::All),
            (None, None) if labelled => (DeviceSource::V1Label, DeviceRequest::All),
            (None, None) => (DeviceSource::VisibleDevices, DeviceRequest::NoGpu),
        };
        if devices == DeviceRequest::NoGpu {
            return Ok(Request::no_gpu(source, rootfs, Delivery::Bind, warnings));
        }
        let from_plugin = matches!(
            source,
            DeviceSource::VolumeMounts | DeviceSource::CdiAnnotation(_)
        );
        if !privileged && !from_plugin && !config.accept_visible_devices_when_unprivileged {
            warnings.push(Warning::DevicesIgnoredUnprivileged {
                input: source.clone(),
            });
            return Ok(Request::no_gpu(source, rootfs, Delivery::Bind, warnings));
        }

        let supported = config.supported_capabilities;
        let capabilities = match env.get(ENV_DRIVER_CAPABILITIES) {
            Some(value) => parse_capabilities(value, supported)?,
            None if legacy || labelled => supported,
            None => Capabilities::default_set().intersection(supported),
        };

        let extra = ExtraRequest::from_env(env, privileged)
            .map_err(|e| Refusal::ExtraDevice(Box::new(e)))?;
        let requirements = image_requirements(env, config)?;
        let v1_cuda_label = if requirements_disabled(env, config) {
            None
        } else {
            parse_v1_label(annotations)?
        };

        Ok(Request {
            devices,
            device_source: source,
            capabilities,
            requirements,
            v1_cuda_label,
            v1_volumes: v1_volumes.unwrap_or_default(),
            delivery: Delivery::Bind,
            rootfs,
            compat: None,
            warnings,
            extra,
        })
    }

    /// The request of v1's `nvidia-docker run|create` for an image: its
    /// labels and its config's environment. Not a GPU container unless
    /// [`is_v1_gpu_image`]; a modern image (`NVIDIA_VISIBLE_DEVICES` in its
    /// environment, no label) gets v1's driver volume like a labelled one.
    /// `NV_GPU` selects the GPUs (see [`Request::from_nv_gpu`]); the image's
    /// `NVIDIA_REQUIRE_*` (or a legacy `CUDA_VERSION`) are checked after
    /// v1's label rule.
    pub fn from_v1_image(
        nv_gpu: Option<&str>,
        labels: &BTreeMap<String, String>,
        image_env: &Env,
        config: &Config,
    ) -> Result<Request, Refusal> {
        if !is_v1_gpu_image(labels, image_env) {
            return Request::from_nv_gpu(nv_gpu, &BTreeMap::new(), config);
        }
        let mut labels = labels.clone();
        labels
            .entry(LABEL_VOLUMES_NEEDED.to_owned())
            .or_insert_with(|| V1Volume::NvidiaDriver.name().to_owned());
        let mut req = Request::from_nv_gpu(nv_gpu, &labels, config)?;
        req.requirements = image_requirements(image_env, config)?;
        Ok(req)
    }

    /// The request of v1's `nvidia-docker run|create`: `NV_GPU` (spaces
    /// and/or commas; unset or empty = all GPUs) and the image's labels. An
    /// image without `com.nvidia.volumes.needed` gets nothing, as in v1.
    pub fn from_nv_gpu(
        nv_gpu: Option<&str>,
        labels: &BTreeMap<String, String>,
        config: &Config,
    ) -> Result<Request, Refusal> {
        let mut warnings = Vec::new();
        let source = DeviceSource::NvGpu;
        let Some(v1_volumes) = label_volumes(labels, &mut warnings) else {
            return Ok(Request::no_gpu(
                source,
                RootfsFlavor::default(),
                Delivery::V1Volume,
                warnings,
            ));
        };
        let ids = split_ids(nv_gpu.unwrap_or_default(), &[' ', ',']);
        let devices = if ids.is_empty() {
            DeviceRequest::All
        } else {
            parse_v1_ids(&ids, &source)?
        };
        let v1_cuda_label = if config.disable_require {
            None
        } else {
            parse_v1_label(labels)?
        };
        Ok(Request {
            devices,
            device_source: source,
            capabilities: v1_capabilities(config.supported_capabilities),
            requirements: Vec::new(),
            v1_cuda_label,
            v1_volumes,
            delivery: Delivery::V1Volume,
            rootfs: RootfsFlavor::default(),
            compat: None,
            warnings,
            extra: ExtraRequest::default(),
        })
    }

    /// The request of v1's REST `GET /docker/cli?dev=..&vol=..`: each value
    /// split on spaces (`+` in the query), absent, empty or `*` meaning all.
    /// An unknown volume is v1's `invalid volume: <name>`; an unknown device
    /// v1's `invalid device: <id>`.
    pub fn from_v1_query(
        dev: Option<&str>,
        vol: Option<&str>,
        config: &Config,
    ) -> Result<Request, Refusal> {
        let source = DeviceSource::V1Query;
        let dev_ids = split_ids(dev.unwrap_or_default(), &[' ']);
        let devices = if dev_ids.is_empty() || dev_ids.iter().any(|d| d == "*") {
            DeviceRequest::All
        } else {
            parse_v1_ids(&dev_ids, &source)?
        };
        let vol_names = split_ids(vol.unwrap_or_default(), &[' ']);
        let v1_volumes = if vol_names.is_empty() || vol_names.iter().any(|v| v == "*") {
            V1Volume::ALL.into_iter().collect()
        } else {
            vol_names
                .iter()
                .map(|n| {
                    V1Volume::from_name(n)
                        .ok_or_else(|| Refusal::V1InvalidVolume { name: n.clone() })
                })
                .collect::<Result<BTreeSet<_>, _>>()?
        };
        Ok(Request {
            devices,
            device_source: source,
            capabilities: v1_capabilities(config.supported_capabilities),
            requirements: Vec::new(),
            v1_cuda_label: None,
            v1_volumes,
            delivery: Delivery::V1Volume,
            rootfs: RootfsFlavor::default(),
            compat: None,
            warnings: Vec::new(),
            extra: ExtraRequest::default(),
        })
    }
}

fn parse_v1_ids(ids: &[String], source: &DeviceSource) -> Result<DeviceRequest, Refusal> {
    let parsed = ids
        .iter()
        .map(|i| {
            DeviceId::parse(i).ok_or_else(|| Refusal::BadDeviceId {
                id: i.clone(),
                input: source.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DeviceRequest::Devices(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSelector;
    use proptest::prelude::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    fn no_annotations() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn request(pairs: &[(&str, &str)]) -> Result<Request, Refusal> {
        Request::from_container(
            &env(pairs),
            &no_annotations(),
            true,
            RootfsFlavor::DebianLike,
            &Config::default(),
        )
    }

    fn selectors(r: &Request) -> Vec<DeviceSelector> {
        match &r.devices {
            DeviceRequest::Devices(ids) => ids.iter().map(|i| i.selector.clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn env_from_oci() {
        let e = Env::from_oci(["A=1", "B=x=y", "NOEQ", "A=2", "C="]);
        assert_eq!(e.get("A"), Some("2"));
        assert_eq!(e.get("B"), Some("x=y"));
        assert_eq!(e.get("C"), Some(""));
        assert_eq!(e.get("NOEQ"), None);
    }

    #[test]
    fn visible_devices_forms() {
        for v in [
            None,
            Some(""),
            Some("void"),
            Some("0,void"),
            Some(" , "),
            Some("VOID"),
        ] {
            let pairs: Vec<(&str, &str)> = v
                .map(|v| vec![(ENV_VISIBLE_DEVICES, v)])
                .unwrap_or_default();
            assert!(!request(&pairs).unwrap().is_gpu(), "{v:?}");
        }
        assert_eq!(
            request(&[(ENV_VISIBLE_DEVICES, "all")]).unwrap().devices,
            DeviceRequest::All
        );
        assert_eq!(
            request(&[(ENV_VISIBLE_DEVICES, "0,all")]).unwrap().devices,
            DeviceRequest::All
        );
        assert_eq!(
            request(&[(ENV_VISIBLE_DEVICES, "none")]).unwrap().devices,
            DeviceRequest::DriverOnly
        );
        assert_eq!(
            request(&[(ENV_VISIBLE_DEVICES, "none,1")])
                .unwrap()
                .devices
                .clone(),
            { DeviceRequest::Devices(vec![DeviceId::parse("1").unwrap()]) }
        );
        let r = request(&[(
            ENV_VISIBLE_DEVICES,
            " 1, GPU-abc ,0000:04:00.0,0:1,MIG-x,MIG-GPU-a/1/2,,",
        )])
        .unwrap();
        assert_eq!(r.device_source, DeviceSource::VisibleDevices);
        assert_eq!(selectors(&r).len(), 6);
        match request(&[(ENV_VISIBLE_DEVICES, "0,foo")]) {
            Err(Refusal::BadDeviceId { id, input }) => {
                assert_eq!(id, "foo");
                assert_eq!(input, DeviceSource::VisibleDevices);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn swarm_resource_wins() {
        let config = Config {
            swarm_resource: vec!["DOCKER_RESOURCE_GPU".into()],
            ..Config::default()
        };
        let e = env(&[("DOCKER_RESOURCE_GPU", "1"), (ENV_VISIBLE_DEVICES, "all")]);
        let r = Request::from_container(&e, &no_annotations(), true, RootfsFlavor::Lib64, &config)
            .unwrap();
        assert_eq!(
            r.device_source,
            DeviceSource::SwarmResource("DOCKER_RESOURCE_GPU".into())
        );
        assert_eq!(selectors(&r), [DeviceSelector::Index(1)]);
    }

    #[test]
    fn capabilities() {
        let caps = |pairs: &[(&str, &str)]| request(pairs).unwrap().capabilities.to_string();
        assert_eq!(caps(&[(ENV_VISIBLE_DEVICES, "all")]), "compute,utility");
        assert_eq!(
            caps(&[(ENV_VISIBLE_DEVICES, "all"), (ENV_DRIVER_CAPABILITIES, "")]),
            "compute,utility"
        );
        assert_eq!(
            caps(&[
                (ENV_VISIBLE_DEVICES, "all"),
                (ENV_DRIVER_CAPABILITIES, "all")
            ]),
            "compute,compat32,graphics,utility,video,display,ngx"
        );
        assert_eq!(
            caps(&[
                (ENV_VISIBLE_DEVICES, "all"),
                (ENV_DRIVER_CAPABILITIES, "graphics,display")
            ]),
            "graphics,display"
        );
        assert_eq!(
            caps(&[(ENV_CUDA_VERSION, "12.2.0")]),
            "compute,compat32,graphics,utility,video,display,ngx"
        );
        assert_eq!(
            request(&[
                (ENV_VISIBLE_DEVICES, "all"),
                (ENV_DRIVER_CAPABILITIES, "compute,gpu")
            ])
            .unwrap_err(),
            Refusal::UnknownCapability {
                name: "gpu".into(),
                value: "compute,gpu".into()
            }
        );
        let limited = Config {
            supported_capabilities: [Capability::Utility, Capability::Compute]
                .into_iter()
                .collect(),
            ..Config::default()
        };
        let e = env(&[
            (ENV_VISIBLE_DEVICES, "all"),
            (ENV_DRIVER_CAPABILITIES, "display"),
        ]);
        assert!(matches!(
            Request::from_container(&e, &no_annotations(), true, RootfsFlavor::Lib64, &limited),
            Err(Refusal::UnsupportedCapability {
                capability: Capability::Display,
                ..
            })
        ));
        // Not a GPU container: a bad capability is not looked at.
        assert!(!request(&[(ENV_DRIVER_CAPABILITIES, "bogus")])
            .unwrap()
            .is_gpu());
    }

    #[test]
    fn requirements_and_legacy() {
        let r = request(&[
            (ENV_VISIBLE_DEVICES, "all"),
            ("NVIDIA_REQUIRE_CUDA", "cuda>=12.2"),
            ("NVIDIA_REQUIRE_ARCH", "arch>=7.0"),
            ("NVIDIA_REQUIRE_JETPACK", "csv-mounts=all"),
            ("CUDA_VERSION", "12.2.0"),
        ])
        .unwrap();
        let vars: Vec<_> = r.requirements.iter().map(|r| r.variable.as_str()).collect();
        assert_eq!(
            vars,
            ["NVIDIA_REQUIRE_ARCH", "NVIDIA_REQUIRE_CUDA"],
            "not legacy: NVIDIA_REQUIRE_CUDA is set"
        );

        let legacy = request(&[("CUDA_VERSION", "11.8.0")]).unwrap();
        assert_eq!(legacy.devices, DeviceRequest::All);
        assert_eq!(legacy.device_source, DeviceSource::LegacyImage);
        assert_eq!(legacy.requirements.len(), 1);
        assert_eq!(legacy.requirements[0].text, "cuda>=11.8");

        assert_eq!(
            request(&[("CUDA_VERSION", "eleven")]).unwrap_err(),
            Refusal::BadCudaVersion {
                value: "eleven".into()
            }
        );
        assert!(matches!(
            request(&[(ENV_VISIBLE_DEVICES, "all"), ("NVIDIA_REQUIRE_X", "foo>1")]),
            Err(Refusal::BadRequirement { .. })
        ));
        for t in ["true", "1", "t", "TRUE", "True", "T"] {
            let r = request(&[
                (ENV_VISIBLE_DEVICES, "all"),
                ("NVIDIA_REQUIRE_X", "foo>1"),
                ("CUDA_VERSION", "x"),
                (ENV_DISABLE_REQUIRE, t),
            ])
            .unwrap();
            assert!(r.requirements.is_empty(), "{t}");
        }
        let disabled = Config {
            disable_require: true,
            ..Config::default()
        };
        let e = env(&[
            (ENV_VISIBLE_DEVICES, "all"),
            ("NVIDIA_REQUIRE_CUDA", "cuda>=99"),
        ]);
        let r =
            Request::from_container(&e, &no_annotations(), true, RootfsFlavor::Lib64, &disabled)
                .unwrap();
        assert!(r.requirements.is_empty());
    }

    #[test]
    fn unprivileged_knob() {
        let strict = Config {
            accept_visible_devices_when_unprivileged: false,
            ..Config::default()
        };
        let e = env(&[(ENV_VISIBLE_DEVICES, "all")]);
        let r = Request::from_container(&e, &no_annotations(), false, RootfsFlavor::Lib64, &strict)
            .unwrap();
        assert!(!r.is_gpu());
        assert_eq!(
            r.warnings,
            [Warning::DevicesIgnoredUnprivileged {
                input: DeviceSource::VisibleDevices
            }]
        );
        let r = Request::from_container(&e, &no_annotations(), true, RootfsFlavor::Lib64, &strict)
            .unwrap();
        assert!(r.is_gpu());
        let r = Request::from_container(
            &e,
            &no_annotations(),
            false,
            RootfsFlavor::Lib64,
            &Config::default(),
        )
        .unwrap();
        assert!(r.is_gpu());
        assert!(is_privileged(&["CAP_CHOWN", "CAP_SYS_ADMIN"]));
        assert!(!is_privileged(&["CAP_CHOWN"]));
        assert!(!is_privileged::<&str>(&[]));
    }

    #[test]
    fn v1_labels_as_annotations() {
        let mut labels = BTreeMap::new();
        labels.insert(
            LABEL_VOLUMES_NEEDED.to_owned(),
            "nvidia_driver other".to_owned(),
        );
        labels.insert(LABEL_CUDA_VERSION.to_owned(), "8.0".to_owned());
        let r = Request::from_container(
            &Env::default(),
            &labels,
            true,
            RootfsFlavor::DebianLike,
            &Config::default(),
        )
        .unwrap();
        assert_eq!(r.devices, DeviceRequest::All);
        assert_eq!(r.device_source, DeviceSource::V1Label);
        assert_eq!(
            r.v1_volumes.iter().copied().collect::<Vec<_>>(),
            [V1Volume::NvidiaDriver]
        );
        assert_eq!(r.v1_cuda_label.as_ref().unwrap().major_minor, (8, 0));
        assert_eq!(r.capabilities, Capabilities::all());
        assert_eq!(
            r.warnings,
            [Warning::UnknownV1Volume {
                name: "other".into()
            }]
        );
        // Narrowed by the variable.
        let e = env(&[(ENV_VISIBLE_DEVICES, "1")]);
        let r = Request::from_container(
            &e,
            &labels,
            true,
            RootfsFlavor::DebianLike,
            &Config::default(),
        )
        .unwrap();
        assert_eq!(selectors(&r), [DeviceSelector::Index(1)]);
        labels.insert(LABEL_CUDA_VERSION.to_owned(), "eight".to_owned());
        assert_eq!(
            Request::from_container(
                &Env::default(),
                &labels,
                true,
                RootfsFlavor::DebianLike,
                &Config::default()
            )
            .unwrap_err(),
            Refusal::BadCudaLabel {
                label: "eight".into()
            }
        );
        let e = env(&[(ENV_DISABLE_REQUIRE, "true")]);
        let r = Request::from_container(
            &e,
            &labels,
            true,
            RootfsFlavor::DebianLike,
            &Config::default(),
        )
        .unwrap();
        assert_eq!(r.v1_cuda_label, None);
    }

    #[test]
    fn nv_gpu() {
        let mut labels = BTreeMap::new();
        let c = Config::default();
        assert!(
            !Request::from_nv_gpu(Some("0"), &labels, &c)
                .unwrap()
                .is_gpu(),
            "unlabelled image"
        );
        labels.insert(LABEL_VOLUMES_NEEDED.to_owned(), "nvidia_driver".to_owned());
        let r = Request::from_nv_gpu(None, &labels, &c).unwrap();
        assert_eq!(r.devices, DeviceRequest::All);
        assert_eq!(r.delivery, Delivery::V1Volume);
        assert_eq!(
            Request::from_nv_gpu(Some(" "), &labels, &c)
                .unwrap()
                .devices,
            DeviceRequest::All
        );
        let r = Request::from_nv_gpu(Some("0 1,GPU-8d  ,2"), &labels, &c).unwrap();
        assert_eq!(
            selectors(&r),
            [
                DeviceSelector::Index(0),
                DeviceSelector::Index(1),
                DeviceSelector::Uuid("gpu-8d".into()),
                DeviceSelector::Index(2)
            ]
        );
        assert_eq!(
            Request::from_nv_gpu(Some("0,x"), &labels, &c)
                .unwrap_err()
                .to_string(),
            "invalid device: x"
        );
    }

    #[test]
    fn v1_query() {
        let c = Config::default();
        for (dev, vol) in [(None, None), (Some(""), Some("")), (Some("*"), Some("*"))] {
            let r = Request::from_v1_query(dev, vol, &c).unwrap();
            assert_eq!(r.devices, DeviceRequest::All);
            assert_eq!(r.v1_volumes.len(), 1);
        }
        let r = Request::from_v1_query(Some("0 1"), Some("nvidia_driver"), &c).unwrap();
        assert_eq!(
            selectors(&r),
            [DeviceSelector::Index(0), DeviceSelector::Index(1)]
        );
        assert_eq!(
            Request::from_v1_query(Some("a"), None, &c)
                .unwrap_err()
                .to_string(),
            "invalid device: a"
        );
        assert_eq!(
            Request::from_v1_query(None, Some("nvidia_x"), &c)
                .unwrap_err()
                .to_string(),
            "invalid volume: nvidia_x"
        );
    }

    proptest! {
        #[test]
        fn from_container_never_panics(
            vd in prop::option::of(".{0,30}"),
            caps in prop::option::of(".{0,30}"),
            req in prop::option::of(".{0,30}"),
            cuda in prop::option::of(".{0,10}"),
            disable in prop::option::of(".{0,5}"),
            label in prop::option::of(".{0,12}"),
            privileged in any::<bool>(),
        ) {
            let mut pairs = Vec::new();
            if let Some(v) = vd { pairs.push((ENV_VISIBLE_DEVICES.to_string(), v)); }
            if let Some(v) = caps { pairs.push((ENV_DRIVER_CAPABILITIES.to_string(), v)); }
            if let Some(v) = req { pairs.push(("NVIDIA_REQUIRE_CUDA".to_string(), v)); }
            if let Some(v) = cuda { pairs.push((ENV_CUDA_VERSION.to_string(), v)); }
            if let Some(v) = disable { pairs.push((ENV_DISABLE_REQUIRE.to_string(), v)); }
            let mut ann = BTreeMap::new();
            if let Some(l) = label {
                ann.insert(LABEL_VOLUMES_NEEDED.to_string(), "nvidia_driver".to_string());
                ann.insert(LABEL_CUDA_VERSION.to_string(), l);
            }
            let _ = Request::from_container(&Env::from_pairs(pairs), &ann, privileged, RootfsFlavor::Lib64, &Config::default());
        }

        #[test]
        fn v1_inputs_never_panic(a in ".{0,30}", b in ".{0,30}") {
            let c = Config::default();
            let _ = Request::from_v1_query(Some(&a), Some(&b), &c);
            let mut labels = BTreeMap::new();
            labels.insert(LABEL_VOLUMES_NEEDED.to_owned(), b.clone());
            let _ = Request::from_nv_gpu(Some(&a), &labels, &c);
        }
    }
}
