//! Views of the event stream: the Ansible-style human log, the ad-hoc log, JSON Lines, and JUnit XML.

mod adhoc;
mod human;
mod json;
mod junit;
mod progress;
mod tests;

pub use adhoc::AdHoc;
pub use human::Human;
pub use json::JsonLines;
pub use junit::{Junit, Tee};
pub use progress::Progress;
