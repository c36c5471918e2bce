//! Views of the event stream: the Ansible-style human log and JSON Lines.

mod human;
mod json;

pub use human::Human;
pub use json::JsonLines;
