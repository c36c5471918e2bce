//! The local connection: commands run on this machine through `/bin/sh`.

use super::{Command, ConnError, Output};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone, Default)]
pub struct Local {
    /// How `become` runs commands (`None`: roll's default sudo).
    pub(super) method: Option<std::sync::Arc<super::BecomeMethod>>,
}

impl Local {
    pub async fn exec(&self, cmd: &Command) -> Result<Output, ConnError> {
        let (env, mut script) = cmd.split_env(self.method.as_deref().unwrap_or(&super::BecomeMethod::default()));
        // A streamed command ends when its stdin closes, as over ssh: also when roll exits
        // on a signal, which drops nothing (kill_on_drop does not run then).
        let streamed = cmd.lines.is_some() && cmd.stdin.is_none();
        if streamed {
            script = super::streamed_line(&script);
        }
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .envs(env)
            .stdin(if cmd.stdin.is_some() || streamed {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|e| ConnError::Unreachable(format!("cannot start /bin/sh: {e}")))?;
        let pid = child.id();
        if let Some(input) = &cmd.stdin
            && let Some(mut stdin) = child.stdin.take()
        {
            let data = input.clone();
            // Written concurrently so a command that prints before reading cannot deadlock.
            tokio::spawn(async move {
                let _ = stdin.write_all(&data).await;
            });
        }
        if let Some(sink) = &cmd.lines
            && let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take())
        {
            let _stdin = child.stdin.take();
            let run = async {
                let (stdout, stderr) = super::read_streaming(out, err, sink).await?;
                let status = child.wait().await?;
                Ok::<_, std::io::Error>(Output {
                    rc: status.code().unwrap_or(-1),
                    stdout,
                    stderr,
                })
            };
            return match cmd.timeout {
                None => run.await,
                Some(t) => match tokio::time::timeout(t, run).await {
                    Ok(r) => r,
                    Err(_) => {
                        if let Some(pid) = pid {
                            kill_group(pid);
                        }
                        return Err(ConnError::Timeout(t.as_secs()));
                    }
                },
            }
            .map_err(|e| ConnError::Failed(format!("waiting for /bin/sh: {e}")));
        }
        let wait = child.wait_with_output();
        let out = match cmd.timeout {
            None => wait.await,
            Some(t) => match tokio::time::timeout(t, wait).await {
                Ok(r) => r,
                Err(_) => {
                    // The whole process group goes, so children of the shell die too.
                    if let Some(pid) = pid {
                        kill_group(pid);
                    }
                    return Err(ConnError::Timeout(t.as_secs()));
                }
            },
        }
        .map_err(|e| ConnError::Failed(format!("waiting for /bin/sh: {e}")))?;
        Ok(Output {
            rc: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// SIGKILL to the process group the shell leads (`process_group(0)` made its pid the group id).
fn kill_group(pid: u32) {
    // Never through the `kill` binary: procps-ng 4.0.2 (Debian 12) was seen (under strace)
    // turning `kill -KILL -PGID` into kill(-1, SIGKILL), which as root ends every process on
    // the machine.
    let Ok(pgid) = i32::try_from(pid) else { return };
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals exactly that process group; no memory
        // is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}
