//! RUN's `--mount` flags: `type=cache` (a directory of the build cache kept across builds,
//! `id`, `sharing=shared|locked|private`, `uid`, `gid`, `mode`, `ro`), `type=tmpfs` (`size`)
//! and `type=bind` (a path of the build context, read-only unless `rw`). Every other type or
//! option is refused by name rather than ignored.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;

use nix::fcntl::{Flock, FlockArg};

use super::dockerfile::Instruction;
use super::error::{BuildError, Result};
use super::stage::Context;
use crate::runtime::Mount;

/// A mount of one RUN step, with the lock that keeps a `sharing=locked` (or a busy
/// `private`) cache to this step while it runs.
pub struct RunMount {
    pub mount: Mount,
    _lock: Option<Flock<File>>,
    /// A `sharing=private` cache that another step holds: a fresh one, gone afterwards.
    _scratch: Option<tempfile::TempDir>,
}

const COMMON: &[&str] = &["type", "target", "dst", "destination"];
const CACHE: &[&str] = &["id", "sharing", "ro", "readonly", "uid", "gid", "mode"];
const TMPFS: &[&str] = &["size"];
const BIND: &[&str] = &["source", "src", "rw", "readwrite", "ro", "readonly"];

/// Parses one `--mount` value of `instruction`.
pub fn run_mount(cx: &Context, instruction: &Instruction, flag: &str) -> Result<RunMount> {
    let fail = |message: String| cx.fail(instruction, format!("--mount={flag}: {message}"));
    let mut fields = BTreeMap::new();
    for part in flag.split(',') {
        let (name, value) = part.split_once('=').unwrap_or((part, "true"));
        fields.insert(name.to_string(), value.to_string());
    }
    let kind = fields.get("type").map(String::as_str).unwrap_or("bind").to_string();
    let allowed: &[&str] = match kind.as_str() {
        "cache" => CACHE,
        "tmpfs" => TMPFS,
        "bind" => BIND,
        other => return Err(fail(format!("type={other} is not supported (cache, tmpfs and bind are)"))),
    };
    if let Some(unknown) = fields.keys().find(|k| !COMMON.contains(&k.as_str()) && !allowed.contains(&k.as_str())) {
        let hint = if unknown == "from" { "; COPY --from the stage instead" } else { "" };
        return Err(fail(format!("option {unknown} is not supported for type={kind}{hint}")));
    }
    let target = ["target", "dst", "destination"]
        .iter()
        .find_map(|k| fields.get(*k))
        .cloned()
        .ok_or_else(|| fail("expected target=PATH".into()))?;
    let flag_on = |names: &[&str]| names.iter().filter_map(|n| fields.get(*n)).any(|v| v != "false");
    let plain = |mount| RunMount { mount, _lock: None, _scratch: None };
    match kind.as_str() {
        "tmpfs" => {
            let size = fields
                .get("size")
                .map(|s| crate::project::units::parse_byte_size(s).map_err(|e| fail(format!("size: {e}"))))
                .transpose()?;
            Ok(plain(Mount::Tmpfs { target, size, mode: None }))
        }
        "bind" => {
            let source = fields.get("source").or_else(|| fields.get("src")).cloned().unwrap_or_default();
            let entry = cx
                .context_view
                .resolve(&source, true)
                .ok_or_else(|| fail(format!("{source} is not in the build context")))?;
            let writable = flag_on(&["rw", "readwrite"]);
            Ok(plain(Mount::Bind { source: entry.host().to_path_buf(), target, read_only: !writable }))
        }
        _ => cache_mount(cx, &fields, target, flag_on(&["ro", "readonly"])).map_err(|e| match e {
            BuildError::At { message, .. } => fail(message),
            other => other,
        }),
    }
}

fn cache_mount(cx: &Context, fields: &BTreeMap<String, String>, target: String, read_only: bool) -> Result<RunMount> {
    let id = fields.get("id").cloned().unwrap_or_else(|| target.clone());
    let number = |name: &str, radix: u32| -> Result<Option<u32>> {
        fields
            .get(name)
            .map(|v| u32::from_str_radix(v, radix))
            .transpose()
            .map_err(|_| at(format!("{name}: expected a number, found {:?}", fields.get(name))))
    };
    let (uid, gid, mode) = (number("uid", 10)?, number("gid", 10)?, number("mode", 8)?);
    let dir = cx.cache.mount_dir(&id)?;
    let fresh = std::fs::read_dir(&dir).map(|mut d| d.next().is_none()).unwrap_or(false);
    if fresh {
        std::os::unix::fs::chown(&dir, uid.or(Some(0)), gid.or(Some(0)))
            .map_err(BuildError::io("cannot chown", &dir))?;
        let permissions = std::fs::Permissions::from_mode(mode.unwrap_or(0o755));
        std::fs::set_permissions(&dir, permissions).map_err(BuildError::io("cannot chmod", &dir))?;
    }
    let lock_path = dir.with_extension("lock");
    let lock_file = || File::create(&lock_path).map_err(BuildError::io("cannot create", &lock_path));
    let sharing = fields.get("sharing").map(String::as_str).unwrap_or("shared");
    let (lock, scratch, source) = match sharing {
        "shared" => (None, None, dir),
        "locked" => {
            let lock = Flock::lock(lock_file()?, FlockArg::LockExclusive)
                .map_err(|(_, e)| BuildError::io("cannot lock", &lock_path)(e.into()))?;
            (Some(lock), None, dir)
        }
        "private" => match Flock::lock(lock_file()?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => (Some(lock), None, dir),
            Err(_) => {
                let scratch = cx.store.temp_dir()?;
                let source = scratch.path().to_path_buf();
                (None, Some(scratch), source)
            }
        },
        other => return Err(at(format!("sharing={other}: expected shared, locked or private"))),
    };
    Ok(RunMount { mount: Mount::Volume { source, target, read_only, copy_up: false }, _lock: lock, _scratch: scratch })
}

/// A message for the caller to locate (it knows the instruction).
fn at(message: String) -> BuildError {
    BuildError::At { file: String::new(), line: 0, instruction: String::new(), message }
}
