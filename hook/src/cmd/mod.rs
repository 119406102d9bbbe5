//! One file per subcommand of `nvidia-docker-hook`.
pub mod inventory;
pub mod prestart;
