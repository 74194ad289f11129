//! The one encoding of sled keys. A tenant-owned record's key starts with its
//! tenant id, length first (u32, big-endian), so that every tree is scanned
//! one tenant at a time and no tenant id can run into the bytes after it.
//! Further variable-length parts are written the same way; fixed-width parts
//! (ids, big-endian times and versions) and a key's last part go as they are,
//! so keys sort by them.

/// A key under construction; sled takes it wherever it takes `AsRef<[u8]>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// The prefix every key of `tenant` shares in a tree.
    pub fn tenant(tenant: impl AsRef<str>) -> Key {
        Key(Vec::with_capacity(48)).text(tenant.as_ref())
    }

    /// Appends a variable-length part, length first.
    pub fn text(mut self, part: &str) -> Key {
        self.0.extend_from_slice(&(part.len() as u32).to_be_bytes());
        self.0.extend_from_slice(part.as_bytes());
        self
    }

    /// Appends a fixed-width part, or the last part of a key, as it is.
    pub fn raw(mut self, bytes: &[u8]) -> Key {
        self.0.extend_from_slice(bytes);
        self
    }

    /// Appends a number big-endian, so keys sort by it.
    pub fn u32(self, number: u32) -> Key {
        self.raw(&number.to_be_bytes())
    }

    pub fn u64(self, number: u64) -> Key {
        self.raw(&number.to_be_bytes())
    }

    /// The tenant of a key this type wrote, and the key's rest.
    pub fn split_tenant(key: &[u8]) -> Option<(&str, &[u8])> {
        let length = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
        let tenant = std::str::from_utf8(key.get(4..4 + length)?).ok()?;
        Some((tenant, key.get(4 + length..)?))
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Key> for sled::IVec {
    fn from(key: Key) -> sled::IVec {
        key.0.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed_and_tenants_cannot_run_into_each_other() {
        assert_eq!(Key::tenant("t_a").text("x").u32(7).into_vec(), b"\0\0\0\x03t_a\0\0\0\x01x\0\0\0\x07");
        let one = Key::tenant("t_a").raw(b"b");
        let other = Key::tenant("t_ab");
        assert!(!one.as_ref().starts_with(other.as_ref()) && !other.as_ref().starts_with(Key::tenant("t_a").as_ref()));
    }
}
