//! The inventory: loaded from a validated snapshot, rediscovered (NVML, the
//! linker cache, driver files, `/proc/devices`) only when the driver changed.
//!
//! (in progress: issue 4.) Contract: `load_or_discover(&HookConfig) ->
//! Result<rules::Inventory, InventoryError>` never runs NVML in the calling
//! process (discovery happens in a child), and is fast from a warm snapshot.
