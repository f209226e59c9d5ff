//! Hashers for the per-request lookups of the pass-through hot path, where SipHash (std's
//! default, built to resist collision flooding with attacker-chosen keys) costs more than the
//! rest of the lookup. Both are used only for maps whose keys an outsider cannot choose:
//! keys that are already keyed hashes ([`PreHashed`]), and names from the configuration
//! ([`Fnv`]); a request only looks keys up in them, it never inserts.

/// For `u64` keys that are already uniformly distributed hashes: the key is the hash.
pub type PreHashed = std::hash::BuildHasherDefault<PreHashedKey>;

/// FNV-1a: a few instructions per byte for short keys such as service aliases.
pub type Fnv = std::hash::BuildHasherDefault<FnvHasher>;

#[derive(Debug, Default)]
pub struct PreHashedKey(u64);

impl std::hash::Hasher for PreHashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are meant for this; fold anything else in rather than ignore it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[derive(Debug)]
pub struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn maps_with_these_hashers_find_what_they_hold() {
        let mut by_name: HashMap<String, usize, super::Fnv> = HashMap::default();
        let mut by_hash: HashMap<u64, usize, super::PreHashed> = HashMap::default();
        for i in 0..1000 {
            by_name.insert(format!("service-{i}"), i);
            by_hash.insert((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), i);
        }
        for i in 0..1000 {
            assert_eq!(by_name.get(format!("service-{i}").as_str()), Some(&i));
            assert_eq!(
                by_hash.get(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                Some(&i)
            );
        }
        assert_eq!(by_name.get("service-1000"), None);
        // FNV-1a of "a" (the published test vector).
        use std::hash::Hasher;
        let mut h = super::FnvHasher::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
