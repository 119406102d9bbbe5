//! One file per subcommand of `nvidia-docker-hook`.
pub mod create_container;
pub mod explain;
pub mod inventory;
pub mod prestart;
