//! `[control]`: where the control API listens (the Unix socket xdhcpctl
//! talks to) and who may connect to it.
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// The socket's path when `[control]` gives none.
pub const DEFAULT_SOCKET: &str = "/run/xdhcpd/control.sock";

/// `[control]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Path of the Unix socket; default [`DEFAULT_SOCKET`].
    pub socket: Option<Spanned<String>>,
    /// A group whose members may connect too (mode 0660); without it only
    /// the daemon's user may (mode 0600).
    pub group: Option<Spanned<String>>,
}

/// `[control]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    pub socket: PathBuf,
    pub group: Option<String>,
}

/// `sun_path` holds 108 bytes with its terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The settings of `[control]`, or the span and reason of what is wrong.
pub(super) fn check(
    c: &Spanned<ControlConfig>,
) -> Result<Control, (std::ops::Range<usize>, String)> {
    let socket = match &c.get_ref().socket {
        None => PathBuf::from(DEFAULT_SOCKET),
        Some(s) => {
            let p = s.get_ref();
            if !p.starts_with('/') {
                return Err((s.span(), format!("socket {p:?} must be an absolute path")));
            }
            if p.ends_with('/') {
                return Err((s.span(), format!("socket {p:?} names a directory")));
            }
            if p.len() > MAX_SOCKET_PATH {
                return Err((
                    s.span(),
                    format!(
                        "socket {p:?} is {} bytes long: a Unix socket path has at most {MAX_SOCKET_PATH}",
                        p.len()
                    ),
                ));
            }
            PathBuf::from(p)
        }
    };
    let group = match &c.get_ref().group {
        None => None,
        Some(g) => {
            let n = g.get_ref();
            // The shadow-utils rule for names (useradd/groupadd).
            let ok = !n.is_empty()
                && n.len() <= 32
                && !n.starts_with('-')
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok {
                return Err((g.span(), format!("group {n:?} is not a group name")));
            }
            Some(n.clone())
        }
    };
    Ok(Control { socket, group })
}
