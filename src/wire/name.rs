//! `vm_name`: the VM name every packet carries.
//!
//! `vm_name`: the NUL-terminated VM name every packet carries, checked to
//! be printable UTF-8 that fits.

use std::fmt;

use super::bytes::put;
use super::{WireError, VM_MAX_NAME_SZ};

/// A VM name as carried in `vm_name`: at most 31 bytes of printable UTF-8,
/// so that it always fits with its NUL terminator and is safe to log.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VmName {
    /// Name bytes followed by zeros; invariant: valid printable UTF-8 prefix
    /// of length `len`, everything after it zero.
    buf: [u8; VM_MAX_NAME_SZ],
    len: u8,
}

impl VmName {
    /// The empty name that DPDK's per-lcore CPU_POWER packets carry.
    pub const EMPTY: VmName = VmName {
        buf: [0; VM_MAX_NAME_SZ],
        len: 0,
    };

    /// Validates a name: at most 31 bytes, no control characters (NUL
    /// included, since C readers would cut the name there).
    pub fn new(name: &str) -> Result<Self, WireError> {
        let bytes = name.as_bytes();
        if bytes.len() >= VM_MAX_NAME_SZ {
            return Err(WireError::VmNameTooLong { len: bytes.len() });
        }
        check_printable(name)?;
        let mut buf = [0u8; VM_MAX_NAME_SZ];
        put(&mut buf, 0, bytes);
        Ok(VmName {
            buf,
            // Lossless: checked < 32 above.
            len: bytes.len() as u8,
        })
    }

    /// Parses the 32-byte wire field: requires a NUL terminator and a
    /// printable UTF-8 prefix; bytes after the NUL are ignored, as C does.
    pub fn from_wire(field: &[u8; VM_MAX_NAME_SZ]) -> Result<Self, WireError> {
        let len = field
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::VmNameUnterminated)?;
        let prefix = field.get(..len).unwrap_or_default();
        let name = std::str::from_utf8(prefix).map_err(|e| {
            let offset = e.valid_up_to();
            WireError::VmNameInvalid {
                offset,
                byte: prefix.get(offset).copied().unwrap_or(0),
            }
        })?;
        Self::new(name)
    }

    /// The 32-byte wire field: name, NUL, zero fill.
    pub const fn to_wire(&self) -> [u8; VM_MAX_NAME_SZ] {
        self.buf
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Never falls back: `buf[..len]` is valid UTF-8 by construction.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The name bytes without terminator.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Length in bytes (0..=31).
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// True for the empty name (DPDK's CPU_POWER packets).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for VmName {
    fn default() -> Self {
        VmName::EMPTY
    }
}

impl fmt::Debug for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VmName").field(&self.as_str()).finish()
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for VmName {
    type Error = WireError;

    fn try_from(name: &str) -> Result<Self, WireError> {
        VmName::new(name)
    }
}

/// Rejects control characters so that names are safe to log and compare.
fn check_printable(name: &str) -> Result<(), WireError> {
    match name.char_indices().find(|(_, c)| c.is_control()) {
        Some((offset, _)) => Err(WireError::VmNameInvalid {
            offset,
            byte: name.as_bytes().get(offset).copied().unwrap_or(0),
        }),
        None => Ok(()),
    }
}
