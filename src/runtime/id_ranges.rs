//! Host ids for containers with a user namespace of their own: hoist's range of
//! subordinate ids (the `hoist` entry of /etc/subuid and /etc/subgid, or the files named
//! by `HOIST_SUBUID`/`HOIST_SUBGID`), cut into slots of 65536 ids, one slot per container.
//!
//! When a file has no `hoist` entry, one is appended above every range already given out
//! (as Docker does for `dockremap`), so the feature works without set-up and never hands
//! a container ids that belong to a user's rootless containers.
//!
//! A slot is leased to the container's writable layer (or its state directory): files in
//! the layer are owned by the slot's ids, so a restarted container must get the same slot.
//! A slot whose owner directory is gone is free again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{Result, RuntimeError};
use super::spec::IdMap;

/// Ids per container: 0–65535, what images use.
pub const SLOT: u32 = 65_536;
/// Slots in a range hoist appends itself.
const DEFAULT_SLOTS: u32 = 1024;
/// Where an appended range may start at the lowest (the ids below are for users).
const LOWEST_START: u64 = 100_000;
const OWNER: &str = "hoist";

fn error(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::IdRanges { path: path.to_path_buf(), message: message.into() }
}

/// `(start, count)` of every `name:start:count` line.
fn entries(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(3, ':');
            let name = fields.next()?.to_string();
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            Some((name, start, count))
        })
        .collect()
}

/// hoist's `(start, count)` in the subordinate-id file at `path`, appended when missing.
fn owned_range(path: &Path) -> Result<(u32, u32)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(RuntimeError::Io { action: "cannot read", path: path.to_path_buf(), source: e }),
    };
    let all = entries(&text);
    if let Some((_, start, count)) = all.iter().find(|(name, ..)| name == OWNER) {
        let (start, count) = (u32::try_from(*start), u32::try_from(*count));
        return match (start, count) {
            (Ok(start), Ok(count)) if count >= SLOT && start.checked_add(count).is_some() => Ok((start, count)),
            _ => Err(error(path, format!("the {OWNER} entry must give at least {SLOT} ids below 2^32"))),
        };
    }
    let start = all.iter().map(|(_, start, count)| start + count).max().unwrap_or(0).max(LOWEST_START);
    let start = start.div_ceil(u64::from(SLOT)) * u64::from(SLOT);
    let count = DEFAULT_SLOTS * SLOT;
    let start = u32::try_from(start)
        .ok()
        .filter(|s| s.checked_add(count).is_some())
        .ok_or_else(|| error(path, "no room below 2^32 for hoist's ids: add a `hoist:START:COUNT` line"))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(RuntimeError::io("cannot append to", path))?;
    let separator = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
    writeln!(file, "{separator}{OWNER}:{start}:{count}").map_err(RuntimeError::io("cannot append to", path))?;
    tracing::info!("gave hoist the subordinate ids {start}–{} in {}", start + count - 1, path.display());
    Ok((start, count))
}

fn configured(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

/// The id map leased to `owner` (a container's writable layer or state directory), the
/// same one as before when `owner` had one; leases live in `state_root`.
pub fn lease(state_root: &Path, owner: &Path) -> Result<IdMap> {
    let (uid_file, gid_file) = (configured("HOIST_SUBUID", "/etc/subuid"), configured("HOIST_SUBGID", "/etc/subgid"));
    let lock_path = state_root.join("userns.lock");
    let lock_file =
        crate::roots::open_private(&lock_path, true).map_err(RuntimeError::io("cannot open", &lock_path))?;
    // One hoist at a time hands out slots.
    let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| RuntimeError::Sys { action: "locking the user-namespace leases", source: e })?;
    let (uid_start, uid_count) = owned_range(&uid_file)?;
    let (gid_start, gid_count) = owned_range(&gid_file)?;
    let slots = (uid_count / SLOT).min(gid_count / SLOT);
    let leases_path = state_root.join("userns-leases.json");
    let mut leases: BTreeMap<u32, PathBuf> = match std::fs::read(&leases_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| error(&leases_path, e.to_string()))?,
        Err(_) => BTreeMap::new(),
    };
    leases.retain(|_, holder| holder.exists());
    let slot = match leases.iter().find(|(_, holder)| holder.as_path() == owner) {
        Some((slot, _)) => *slot,
        None => {
            let free = (0..slots).find(|slot| !leases.contains_key(slot)).ok_or_else(|| {
                error(&uid_file, format!("all {slots} slots of {SLOT} ids are in use: give {OWNER} a larger range"))
            })?;
            // Made now, so that no other container's lease sees the slot as abandoned.
            std::fs::create_dir_all(owner).map_err(RuntimeError::io("cannot create", owner))?;
            leases.insert(free, owner.to_path_buf());
            free
        }
    };
    let bytes = serde_json::to_vec(&leases).map_err(|e| error(&leases_path, e.to_string()))?;
    crate::roots::write_private(&leases_path, &bytes).map_err(RuntimeError::io("cannot write", &leases_path))?;
    drop(lock);
    Ok(IdMap { uid: uid_start + slot * SLOT, gid: gid_start + slot * SLOT, size: SLOT })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_entry_is_appended_above_every_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subuid");
        std::fs::write(&path, "alice:100000:65536\nbob:165536:65536").unwrap();
        let (start, count) = owned_range(&path).unwrap();
        assert_eq!((start, count), (262_144, DEFAULT_SLOTS * SLOT));
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("\nhoist:262144:67108864\n"));
        assert_eq!(owned_range(&path).unwrap(), (start, count), "read back, not appended twice");
    }

    #[test]
    fn a_too_small_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subuid");
        std::fs::write(&path, "hoist:100000:1000\n").unwrap();
        assert!(owned_range(&path).is_err());
    }
}
