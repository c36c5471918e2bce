//! One file per subcommand: wiring only.

pub mod inventory;
pub mod lock;
pub mod plan;
pub mod play;
pub mod run;
pub mod status;
pub mod vault;

use crate::exit::Exit;

/// Print a command's answer on stdout (a newline added). A reader that stops early (`| head`)
/// is no error; another failure to write is, with its reason (`println!` would panic on both).
pub fn print_out(text: &str) -> Exit {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write to stdout: {e}");
            Exit::Error
        }
        _ => Exit::Ok,
    }
}
