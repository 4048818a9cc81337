//! CPU sets: the one CPU-list type, its parsers and formatters.
//!
//! Sets of CPU numbers: the one CPU-list type of the library and its tools,
//! parsed from the kernel's lists (`0-3,8`), hex masks (`0x4f`, any length)
//! and `all`, printed both ways.
//!
//! ```
//! use rte_power::cpulist::{CpuSet, Selection};
//!
//! let s = CpuSet::parse_list("6, 0-3,2")?;
//! assert_eq!(s.as_slice(), &[0, 1, 2, 3, 6]);
//! assert_eq!(s.to_string(), "0-3,6");       // the kernel's compact form
//! assert_eq!(s.to_mask(), "0x4f");
//! assert_eq!(CpuSet::parse("0x4f")?, s);    // a mask or a list
//! assert_eq!(CpuSet::parse_kernel("\n")?, CpuSet::new()); // an empty sysfs list
//! assert_eq!(Selection::parse("all")?, Selection::All);
//! # Ok::<(), rte_power::cpulist::CpuListError>(())
//! ```

use std::fmt;

/// Largest CPU number accepted from text (a typo must not allocate gigabytes).
pub const MAX_CPU: u32 = 65_535;

/// Why a text is not a CPU list or mask. The messages name the offending
/// part of the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    /// Nothing to parse (a list must name at least one CPU).
    #[error("empty list")]
    Empty,
    /// A list entry that is not a decimal number.
    #[error("'{0}' is not a decimal number")]
    NotDecimal(String),
    /// A CPU number above [`MAX_CPU`].
    #[error("'{0}' is too large (max {MAX_CPU})")]
    TooLarge(String),
    /// A range whose end is below its start.
    #[error("bad range '{0}'")]
    BadRange(String),
    /// Not hex digits (with an optional `0x` and `_` separators).
    #[error("'{0}' is not a hex CPU mask")]
    NotMask(String),
    /// A mask bit above [`MAX_CPU`].
    #[error("mask '{0}' names a CPU above {MAX_CPU}")]
    MaskTooLarge(String),
    /// A mask with no bit set.
    #[error("mask '{0}' selects no CPU")]
    MaskEmpty(String),
}

/// A sorted set of CPU numbers without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuSet(Vec<u32>);

impl CpuSet {
    /// The empty set.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// From any numbers (sorted, deduplicated).
    pub fn from_iter_u32(it: impl IntoIterator<Item = u32>) -> Self {
        let mut v: Vec<u32> = it.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        Self(v)
    }

    /// One CPU.
    pub fn single(cpu: u32) -> Self {
        Self(vec![cpu])
    }

    /// Members, ascending.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No member?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Membership test.
    pub fn contains(&self, cpu: u32) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }

    /// Adds a member.
    pub fn insert(&mut self, cpu: u32) {
        if let Err(i) = self.0.binary_search(&cpu) {
            self.0.insert(i, cpu);
        }
    }

    /// Iterates the members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// Parses a list: `3`, `0-3,6`, `1, 3,5-7` (decimal only: `010` is
    /// ten; at least one CPU).
    pub fn parse_list(s: &str) -> Result<Self, CpuListError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(CpuListError::Empty);
        }
        Self::parse_parts(s.split(','))
    }

    /// Parses a list as the kernel writes it in sysfs (`online`,
    /// `topology/thread_siblings_list`): like [`parse_list`](Self::parse_list),
    /// but an empty text (a trailing newline at most) is the empty set.
    pub fn parse_kernel(s: &str) -> Result<Self, CpuListError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::new());
        }
        Self::parse_parts(s.split(',').filter(|p| !p.trim().is_empty()))
    }

    fn parse_parts<'a>(parts: impl Iterator<Item = &'a str>) -> Result<Self, CpuListError> {
        let mut out = Vec::new();
        for part in parts {
            let part = part.trim();
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (parse_dec(a)?, parse_dec(b)?),
                None => {
                    let v = parse_dec(part)?;
                    (v, v)
                }
            };
            if a > b {
                return Err(CpuListError::BadRange(part.to_string()));
            }
            out.extend(a..=b);
        }
        Ok(Self::from_iter_u32(out))
    }

    /// Parses a hex mask (`0x5`, `5`, `0x1_0000_0000`), bit N = CPU N.
    pub fn parse_mask(s: &str) -> Result<Self, CpuListError> {
        let t = s.trim();
        let digits = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t)
            .replace('_', "");
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CpuListError::NotMask(s.to_string()));
        }
        let mut out = Vec::new();
        for (pos, c) in digits.chars().rev().enumerate() {
            let nib = c.to_digit(16).unwrap_or(0);
            for bit in 0..4u32 {
                if nib & (1 << bit) != 0 {
                    let cpu = u32::try_from(pos)
                        .ok()
                        .and_then(|p| p.checked_mul(4))
                        .and_then(|p| p.checked_add(bit))
                        .filter(|c| *c <= MAX_CPU)
                        .ok_or_else(|| CpuListError::MaskTooLarge(s.to_string()))?;
                    out.push(cpu);
                }
            }
        }
        if out.is_empty() {
            return Err(CpuListError::MaskEmpty(s.to_string()));
        }
        Ok(Self::from_iter_u32(out))
    }

    /// A mask if the text starts with `0x`/`0X`, else a list.
    pub fn parse(s: &str) -> Result<Self, CpuListError> {
        let t = s.trim_start();
        if t.starts_with("0x") || t.starts_with("0X") {
            Self::parse_mask(s)
        } else {
            Self::parse_list(s)
        }
    }

    /// `0x...` with bit N set for CPU N (`0x0` for the empty set).
    pub fn to_mask(&self) -> String {
        let Some(&top) = self.0.last() else {
            return "0x0".into();
        };
        let mut nibbles = vec![0u8; top as usize / 4 + 1];
        for &c in &self.0 {
            if let Some(n) = nibbles.get_mut(c as usize / 4) {
                *n |= 1 << (c % 4);
            }
        }
        let mut s = String::from("0x");
        for v in nibbles.iter().rev() {
            s.push(char::from_digit(u32::from(*v), 16).unwrap_or('0'));
        }
        s
    }

    /// libvirt's cpumap bytes for `ncpus` host CPUs (bit N of byte N/8);
    /// members beyond the map's last byte are left out.
    pub fn to_cpumap(&self, ncpus: u32) -> Vec<u8> {
        let mut map = vec![0u8; (ncpus as usize).div_ceil(8).max(1)];
        for &c in &self.0 {
            if let Some(b) = map.get_mut(c as usize / 8) {
                *b |= 1 << (c % 8);
            }
        }
        map
    }

    /// The set of a libvirt cpumap.
    pub fn from_cpumap(map: &[u8]) -> Self {
        Self(
            map.iter()
                .enumerate()
                .flat_map(|(i, b)| {
                    (0..8)
                        .filter(move |bit| b & (1 << bit) != 0)
                        .map(move |bit| i * 8 + bit)
                })
                .filter_map(|c| u32::try_from(c).ok())
                .collect(),
        )
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(it: I) -> Self {
        Self::from_iter_u32(it)
    }
}

fn parse_dec(s: &str) -> Result<u32, CpuListError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuListError::NotDecimal(s.to_string()));
    }
    s.parse::<u32>()
        .ok()
        .filter(|v| *v <= MAX_CPU)
        .ok_or_else(|| CpuListError::TooLarge(s.to_string()))
}

/// The kernel's compact form, `0-3,6`; nothing for the empty set (as the
/// kernel writes an empty list).
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            if start != self.0[0] {
                f.write_str(",")?;
            }
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

/// Which CPUs a command works on: every one (`all`), or a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every CPU (the caller knows which are online).
    All,
    /// These CPUs.
    Cpus(CpuSet),
}

impl Selection {
    /// `all`, a hex mask or a list ([`CpuSet::parse`]).
    pub fn parse(s: &str) -> Result<Self, CpuListError> {
        if s.trim() == "all" {
            return Ok(Selection::All);
        }
        CpuSet::parse(s).map(Selection::Cpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_masks_round_trip() {
        let s = CpuSet::parse_list("6, 0-3,2").expect("list");
        assert_eq!(s.as_slice(), &[0, 1, 2, 3, 6]);
        assert_eq!(s.to_string(), "0-3,6");
        assert_eq!(s.to_mask(), "0x4f");
        assert_eq!(CpuSet::parse_mask("0x4f").expect("mask"), s);
        assert_eq!(CpuSet::parse_mask("4F").expect("mask"), s);
        assert_eq!(CpuSet::parse("0X4f").expect("mask"), s);
        assert_eq!(CpuSet::parse(" 0-3,6").expect("list"), s);
        let big = CpuSet::parse_mask("0x1_0000_0000").expect("mask");
        assert_eq!(big.as_slice(), &[32]);
        assert_eq!(CpuSet::from_cpumap(&s.to_cpumap(8)), s);
        assert_eq!(s.to_cpumap(8), vec![0x4f]);
        assert_eq!(s.to_cpumap(4), vec![0x4f], "one byte for 4 CPUs");
        assert_eq!(CpuSet::single(9).to_cpumap(8), vec![0], "beyond the map");
        assert_eq!(CpuSet::new().to_mask(), "0x0");
        assert_eq!(CpuSet::new().to_string(), "");
        assert_eq!(CpuSet::single(5).to_string(), "5");
        let c: CpuSet = [8, 0, 1, 2, 3, 10, 11, 3].into_iter().collect();
        assert_eq!(c.to_string(), "0-3,8,10-11");
    }

    #[test]
    fn set_operations() {
        let mut s = CpuSet::new();
        assert!(s.is_empty());
        s.insert(4);
        s.insert(1);
        s.insert(4);
        assert_eq!(s.as_slice(), &[1, 4]);
        assert_eq!(s.len(), 2);
        assert!(s.contains(4) && !s.contains(2));
        assert_eq!(s.iter().sum::<u32>(), 5);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "a", "3-1", "1,,2", "-1", "99999999999", "0x", "65536"] {
            assert!(CpuSet::parse_list(bad).is_err(), "{bad}");
        }
        for bad in ["", "0x", "0", "xyz", "0x-1"] {
            assert!(CpuSet::parse_mask(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CpuSet::parse_list("010").expect("decimal").as_slice(),
            &[10]
        );
        assert_eq!(CpuSet::parse_list(" "), Err(CpuListError::Empty));
        assert_eq!(
            CpuSet::parse_list("3-1"),
            Err(CpuListError::BadRange("3-1".into()))
        );
        assert_eq!(
            CpuSet::parse_mask("0x0").map_err(|e| e.to_string()),
            Err("mask '0x0' selects no CPU".into())
        );
        let top = format!("0x1{}", "0".repeat(MAX_CPU as usize / 4 + 1));
        assert!(matches!(
            CpuSet::parse_mask(&top),
            Err(CpuListError::MaskTooLarge(_))
        ));
    }

    #[test]
    fn kernel_lists() {
        let k = CpuSet::parse_kernel("0-3,8,10-11\n").expect("kernel");
        assert_eq!(k.as_slice(), &[0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(CpuSet::parse_kernel("\n"), Ok(CpuSet::new()));
        assert_eq!(CpuSet::parse_kernel(""), Ok(CpuSet::new()));
        assert!(CpuSet::parse_kernel("3-1").is_err());
        assert!(CpuSet::parse_kernel("x").is_err());
    }

    #[test]
    fn selections() {
        assert_eq!(Selection::parse("all"), Ok(Selection::All));
        assert_eq!(
            Selection::parse("3"),
            Ok(Selection::Cpus(CpuSet::single(3)))
        );
        assert_eq!(
            Selection::parse("0x6"),
            Ok(Selection::Cpus(CpuSet::from_iter_u32([1, 2])))
        );
        assert!(Selection::parse("al").is_err());
    }
}
