//! A group's id by its name (getgrnam_r(3): a C library routine that
//! reads /etc/group or NSS, so through `libc`), for the control socket's
//! `group`.
use std::ffi::CString;
use std::io;

/// The id of group `name`.
pub fn gid(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::other("a group name has no NUL"))?;
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: `grp` and `buf` outlive the call; the result points into
        // them and is read (gr_gid, a plain integer) before they go.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out)
        };
        match rc {
            0 if out.is_null() => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no group named {name:?}"),
                ));
            }
            0 => return Ok(grp.gr_gid),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_group_zero_and_nonsense_is_not_found() {
        assert_eq!(super::gid("root").unwrap(), 0);
        let e = super::gid("no-such-group-xdhcp").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
