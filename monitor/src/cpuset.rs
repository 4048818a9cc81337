//! Sets of host CPUs (or channel numbers): parsed from lists (`0-3,6`) and
//! hex masks (`0x4f`, any length), printed both ways.

use std::fmt;

/// A sorted set of CPU numbers without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuSet(Vec<u32>);

/// Largest CPU number accepted from text (a typo must not allocate gigabytes).
pub const MAX_CPU: u32 = 65_535;

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

    /// Iterates the members.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// Parses `3`, `0-3,6`, `1,3,5-7` (decimal only: "010" is ten).
    pub fn parse_list(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty list".into());
        }
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (parse_dec(a)?, parse_dec(b)?),
                None => {
                    let v = parse_dec(part)?;
                    (v, v)
                }
            };
            if a > b {
                return Err(format!("bad range '{part}'"));
            }
            out.extend(a..=b);
        }
        Ok(Self::from_iter_u32(out))
    }

    /// Parses a hex mask (`0x5`, `5`, `0x1_0000_0000`), bit N = CPU N.
    pub fn parse_mask(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let digits = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t)
            .replace('_', "");
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("'{s}' is not a hex CPU mask"));
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
                        .ok_or_else(|| format!("mask '{s}' names a CPU above {MAX_CPU}"))?;
                    out.push(cpu);
                }
            }
        }
        if out.is_empty() {
            return Err(format!("mask '{s}' selects no CPU"));
        }
        Ok(Self::from_iter_u32(out))
    }

    /// `0x...` with bit N set for CPU N.
    pub fn to_mask(&self) -> String {
        let Some(&top) = self.0.last() else {
            return "0x0".into();
        };
        let nibbles = top as usize / 4 + 1;
        let mut n = vec![0u8; nibbles];
        for &c in &self.0 {
            n[c as usize / 4] |= 1 << (c % 4);
        }
        let mut s = String::from("0x");
        for v in n.iter().rev() {
            s.push(char::from_digit(u32::from(*v), 16).unwrap_or('0'));
        }
        s
    }

    /// libvirt's cpumap bytes for `ncpus` host CPUs (bit N of byte N/8).
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
            (0..map.len() * 8)
                .filter(|&i| map[i / 8] & (1 << (i % 8)) != 0)
                .filter_map(|i| u32::try_from(i).ok())
                .collect(),
        )
    }
}

fn parse_dec(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a decimal number"));
    }
    s.parse::<u32>()
        .ok()
        .filter(|v| *v <= MAX_CPU)
        .ok_or_else(|| format!("'{s}' is too large (max {MAX_CPU})"))
}

/// `0-3,6` form.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
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
        let big = CpuSet::parse_mask("0x1_0000_0000").expect("mask");
        assert_eq!(big.as_slice(), &[32]);
        assert_eq!(CpuSet::from_cpumap(&s.to_cpumap(8)), s);
        assert_eq!(s.to_cpumap(8), vec![0x4f]);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "a", "3-1", "1,,2", "-1", "99999999999", "0x"] {
            assert!(CpuSet::parse_list(bad).is_err(), "{bad}");
        }
        for bad in ["", "0x", "0", "xyz", "0x-1"] {
            assert!(CpuSet::parse_mask(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CpuSet::parse_list("010").expect("decimal").as_slice(),
            &[10]
        );
    }
}
