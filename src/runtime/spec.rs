//! What a container is made of, independent of Compose: the root filesystem, the process,
//! mounts, limits, capabilities and namespaces. The supervisor builds one from a service;
//! the init stage receives it (as JSON over a pipe) and applies it inside the new namespaces.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique on the machine; names the state directory and the cgroup.
    pub id: String,
    pub root: RootFs,
    pub process: ProcessSpec,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Applied in order after the root is assembled; targets are paths inside the container.
    pub mounts: Vec<Mount>,
    pub limits: Limits,
    /// Capabilities of the process (names like `CAP_NET_ADMIN`); `None` means Docker's default set.
    pub capabilities: Option<Vec<String>>,
    pub network: NetworkMode,
    pub readonly_root: bool,
    /// Size of /dev/shm in bytes (Docker's default is 64 MiB).
    pub shm_size: Option<u64>,
    /// Docker's default seccomp filter; `false` for `security_opt: seccomp=unconfined`.
    pub seccomp: bool,
    /// Full access to devices and /proc, /sys, no masked paths, all capabilities.
    pub privileged: bool,
    /// A small built-in init is PID 1: it reaps zombies and forwards signals to the command.
    pub init: bool,
    /// /etc/hosts, /etc/hostname and /etc/resolv.conf written for this container and
    /// bound over the image's; `None` leaves the image's files alone.
    pub etc_files: Option<EtcFiles>,
    /// Where an overlay root's writable layer (its `upper` and `work` directories) lives.
    /// `None`: in the container's state directory, gone with it. A supervised container
    /// names a directory of its own so that its files survive a stop and a restart, as a
    /// Docker container's do, until it is removed.
    #[serde(default)]
    pub writable_layer: Option<PathBuf>,
    /// Namespaced kernel parameters (`net.core.somaxconn`, `kernel.shmmax`…), written in the
    /// container's own namespaces before anything runs there.
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
    /// The OOM killer's adjustment for the container's processes (-1000 to 1000).
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// The IPC namespace: the container's own, the host's, or another container's.
    #[serde(default)]
    pub ipc: SharedNamespace,
    /// The PID namespace: the container's own or the host's.
    #[serde(default)]
    pub pid: SharedNamespace,
    /// The UTS namespace (host name): the container's own or the host's.
    #[serde(default)]
    pub uts: SharedNamespace,
    /// Host devices given to the container (`devices:`): made in its /dev and allowed by
    /// its device filter.
    #[serde(default)]
    pub devices: Vec<DeviceNode>,
    /// Device access beyond Docker's defaults and `devices` (`device_cgroup_rules`).
    #[serde(default)]
    pub device_rules: Vec<super::devices::DeviceRule>,
    /// The cgroup namespace: the container's own (its cgroup is its `/`), or the host's.
    #[serde(default)]
    pub cgroup_ns: SharedNamespace,
    /// The user namespace: the host's (container root is host root), or one of its own
    /// whose ids map to a range of unprivileged host ids.
    #[serde(default)]
    pub user_namespace: UserNamespace,
}

/// Whose user ids a container's processes have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserNamespace {
    /// The host's: container root is host root (Docker's default).
    #[default]
    Host,
    /// A namespace of its own on a range the runtime leases for the container.
    Auto,
    /// A namespace of its own on this range.
    Mapped(IdMap),
}

/// Container ids 0..size are host uids `uid..uid+size` and host gids `gid..gid+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl IdMap {
    /// The host uid of container uid `uid` (unmapped ids stay as they are).
    pub fn host_uid(&self, uid: u32) -> u32 {
        if uid < self.size {
            self.uid + uid
        } else {
            uid
        }
    }

    pub fn host_gid(&self, gid: u32) -> u32 {
        if gid < self.size {
            self.gid + gid
        } else {
            gid
        }
    }
}

/// A device node of the host's, as the container gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Where it appears in the container (`/dev/fuse`).
    pub path: String,
    pub block: bool,
    pub major: u64,
    pub minor: u64,
    /// Permission bits and owner of the host's node.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `r`, `w`, `m` letters: what the device filter allows.
    pub access: String,
}

/// Whose namespace of one kind a container uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum SharedNamespace {
    #[default]
    Own,
    Host,
    /// Another container's (a /proc/PID/ns/… file).
    Join(PathBuf),
}

/// What goes into the container's /etc/hosts and /etc/resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcFiles {
    /// Extra /etc/hosts lines after the loopback ones: an address and its names.
    pub hosts: Vec<(String, Vec<String>)>,
    /// Nameservers; empty means the host's, minus loopback ones the container cannot reach.
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// The container's `/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RootFs {
    /// Image layers (lowest first) under a per-container writable layer, joined by overlayfs.
    Overlay { lowers: Vec<PathBuf> },
    /// A plain directory used as it is.
    Directory(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub cwd: String,
    /// `name`, `uid`, `name:group` or `uid:gid`, resolved against the container's
    /// /etc/passwd and /etc/group; `None` is root.
    pub user: Option<String>,
    /// Extra groups (`group_add`), names or numbers.
    pub additional_groups: Vec<String>,
    pub rlimits: Vec<Rlimit>,
    /// A pseudo-terminal instead of the given stdio: the caller gets its master side.
    pub terminal: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `nofile`, `nproc`, … (Compose's names).
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Mount {
    /// A host file or directory at `target`.
    Bind { source: PathBuf, target: String, read_only: bool },
    /// A named volume's directory at `target`. When the directory is empty and `copy_up`
    /// is set, the image's content at `target` is copied into it first, as Docker does.
    Volume { source: PathBuf, target: String, read_only: bool, copy_up: bool },
    /// A fresh tmpfs.
    Tmpfs { target: String, size: Option<u64>, mode: Option<u32> },
    /// A file made from `contents` (a secret or a config), owned by `uid:gid` with `mode`,
    /// bound read-only at `target`.
    File { target: String, contents: Vec<u8>, uid: u32, gid: u32, mode: u32 },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: Option<u64>,
    /// Memory + swap; `Some(-1)` for unlimited swap.
    pub memory_swap: Option<i64>,
    /// CPUs as a fraction (`1.5`), applied as a CFS quota over a 100 ms period.
    pub cpus: Option<f64>,
    /// Relative weight, Docker's scale (2–262144, default 1024).
    pub cpu_shares: Option<u64>,
    pub pids: Option<i64>,
    /// A soft limit: memory the kernel reclaims from others first (v2 `memory.low`, v1
    /// `memory.soft_limit_in_bytes`).
    #[serde(default)]
    pub memory_reservation: Option<u64>,
    /// v1 only (`memory.swappiness`, `memory.oom_control`): cgroup v2 has neither.
    #[serde(default)]
    pub swappiness: Option<u64>,
    #[serde(default)]
    pub oom_kill_disable: bool,
    /// CPUs the container may run on, as the kernel writes lists (`0-2,7`).
    #[serde(default)]
    pub cpuset: Option<String>,
    #[serde(default)]
    pub block_io: BlockIo,
    /// The cgroup the container's goes under, relative to the hierarchy's root
    /// (`cgroup_parent`); `None`: hoist's own, beside the supervisor's.
    #[serde(default)]
    pub parent: Option<String>,
}

/// Block I/O limits (`blkio_config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockIo {
    /// Relative weight (10–1000), for every device and per device.
    pub weight: Option<u16>,
    pub device_weights: Vec<(DeviceNumber, u16)>,
    pub throttles: Vec<Throttle>,
}

/// A block device by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNumber {
    pub major: u64,
    pub minor: u64,
}

/// A rate limit on one device: bytes or operations per second, read or written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throttle {
    pub device: DeviceNumber,
    pub kind: ThrottleKind,
    pub rate: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThrottleKind {
    ReadBps,
    WriteBps,
    ReadIops,
    WriteIops,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new network namespace with only loopback (up).
    None,
    /// The host's network namespace.
    Host,
    /// Join an existing namespace (a /proc/PID/ns/net or a bind-mounted netns file).
    Join(PathBuf),
}

/// Docker's PATH for a process whose image and service set none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ProcessSpec {
    /// `args` as root in `/`, with Docker's default PATH and nothing else.
    pub fn new(args: Vec<String>) -> ProcessSpec {
        ProcessSpec {
            args,
            env: vec![DEFAULT_PATH.into()],
            cwd: "/".into(),
            user: None,
            additional_groups: Vec::new(),
            rlimits: Vec::new(),
            terminal: false,
        }
    }
}

impl ContainerSpec {
    /// The id map of a container with a user namespace of its own (once resolved).
    pub fn id_map(&self) -> Option<IdMap> {
        match self.user_namespace {
            UserNamespace::Mapped(map) => Some(map),
            _ => None,
        }
    }

    /// A spec with Docker's defaults for everything but the root and the command.
    pub fn new(id: impl Into<String>, root: RootFs, args: Vec<String>) -> ContainerSpec {
        ContainerSpec {
            id: id.into(),
            root,
            process: ProcessSpec::new(args),
            hostname: None,
            domainname: None,
            mounts: Vec::new(),
            limits: Limits::default(),
            capabilities: None,
            network: NetworkMode::None,
            readonly_root: false,
            shm_size: None,
            seccomp: true,
            privileged: false,
            init: false,
            etc_files: Some(EtcFiles::default()),
            writable_layer: None,
            sysctls: Vec::new(),
            oom_score_adj: None,
            ipc: SharedNamespace::Own,
            pid: SharedNamespace::Own,
            uts: SharedNamespace::Own,
            devices: Vec::new(),
            device_rules: Vec::new(),
            cgroup_ns: SharedNamespace::Own,
            user_namespace: UserNamespace::Host,
        }
    }

    /// The overlay's upper and work directories for a container whose state is in `state_dir`.
    pub fn layer_dirs(&self, state_dir: &Path) -> (PathBuf, PathBuf) {
        let base = self.writable_layer.as_deref().unwrap_or(state_dir);
        (base.join("upper"), base.join("work"))
    }
}
