//! One file per subcommand: wiring only.

pub mod inventory;
pub mod lock;
pub mod plan;
pub mod play;
pub mod run;
pub mod status;
pub mod vault;
