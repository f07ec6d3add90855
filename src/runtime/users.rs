//! Resolving a Compose `user:` (`name`, `uid`, `name:group`, `uid:gid`) and `group_add`
//! against the container's own /etc/passwd and /etc/group, as Docker does.

use super::error::SetupError;

/// Who the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

/// (name, gid, members) of each /etc/group line.
fn groups(text: &str) -> Vec<(String, u32, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let members = f.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).map(String::from).collect());
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, members.unwrap_or_default()))
        })
        .collect()
}

/// Resolves `user` (None = root) with the contents of the container's passwd and group files.
pub fn resolve(
    user: Option<&str>,
    extra_groups: &[String],
    passwd_text: &str,
    group_text: &str,
) -> Result<Identity, SetupError> {
    let users = passwd(passwd_text);
    let all_groups = groups(group_text);
    let spec = user.unwrap_or("0");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => users.iter().find(|e| e.uid == uid),
        Err(_) => Some(users.iter().find(|e| e.name == user_part).ok_or_else(|| {
            SetupError(format!("unable to find user {user_part}: no matching entries in /etc/passwd"))
        })?),
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => user_part.parse().unwrap_or(0),
    };
    let find_group = |g: &str| -> Result<u32, SetupError> {
        match g.parse::<u32>() {
            Ok(gid) => Ok(gid),
            Err(_) => all_groups
                .iter()
                .find(|(name, _, _)| name == g)
                .map(|(_, gid, _)| *gid)
                .ok_or_else(|| SetupError(format!("unable to find group {g}: no matching entries in /etc/group"))),
        }
    };
    let gid = match group_part {
        Some(g) => find_group(g)?,
        None => entry.map(|e| e.gid).unwrap_or(0),
    };
    let mut supplementary: Vec<u32> = match (entry, group_part) {
        // Like Docker: the user's groups from /etc/group, unless a group was given explicitly.
        (Some(e), None) => all_groups.iter().filter(|(_, _, m)| m.contains(&e.name)).map(|(_, g, _)| *g).collect(),
        _ => Vec::new(),
    };
    for g in extra_groups {
        supplementary.push(find_group(g)?);
    }
    if !supplementary.contains(&gid) {
        supplementary.insert(0, gid);
    }
    supplementary.dedup();
    Ok(Identity { uid, gid, groups: supplementary, home: entry.map(|e| e.home.clone()).unwrap_or_else(|| "/".into()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nmysql:x:999:999::/var/lib/mysql:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nmysql:x:999:\napp:x:1000:\ndocker:x:998:app,other\nwheel:x:10:\n";

    #[test]
    fn names_numbers_and_groups() {
        assert_eq!(
            resolve(None, &[], PASSWD, GROUP).unwrap(),
            Identity { uid: 0, gid: 0, groups: vec![0], home: "/root".into() }
        );
        let app = resolve(Some("app"), &[], PASSWD, GROUP).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone(), app.home.as_str()),
            (1000, 1000, vec![1000, 998], "/home/app")
        );
        let numeric = resolve(Some("4242:4343"), &["wheel".into()], PASSWD, GROUP).unwrap();
        assert_eq!((numeric.uid, numeric.gid, numeric.groups), (4242, 4343, vec![4343, 10]));
        assert_eq!(resolve(Some("mysql:app"), &[], PASSWD, GROUP).unwrap().gid, 1000);
        assert!(resolve(Some("nobody"), &[], PASSWD, GROUP).unwrap_err().0.contains("unable to find user nobody"));
        assert!(resolve(Some("app:nogroup"), &[], PASSWD, GROUP).is_err());
    }
}
