//! `up` as a pure function: from the containers that exist (observed) and the services as
//! they should be (desired) to what must happen to each container. No side effects, so the
//! convergence rules are tested without a kernel.

/// A container as the supervisor's record knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub name: String,
    pub service: String,
    pub index: u32,
    pub hash: String,
    pub running: bool,
}

/// A service as the plan wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub service: String,
    pub hash: String,
    /// Container names of replicas 1..=N.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        service: String,
        index: u32,
        name: String,
    },
    /// The container's configuration changed: remove it, then create it again.
    Recreate {
        service: String,
        index: u32,
        name: String,
    },
    /// It exists and is current but not running.
    Start {
        name: String,
    },
    Keep {
        name: String,
    },
    /// Beyond the service's replica count.
    Remove {
        name: String,
    },
    /// Its service is no longer in the project: removed with `--remove-orphans`, else reported.
    Orphan {
        name: String,
        remove: bool,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub remove_orphans: bool,
}

/// What to do with each container of the `desired` services, plus the orphans: containers
/// whose service is not among `project_services`.
pub fn reconcile(
    desired: &[Desired],
    project_services: &[String],
    observed: &[Observed],
    options: Options,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for want in desired {
        for (i, name) in want.names.iter().enumerate() {
            let index = i as u32 + 1;
            let existing = observed.iter().find(|o| o.service == want.service && o.index == index);
            let action = match existing {
                None => Action::Create { service: want.service.clone(), index, name: name.clone() },
                Some(o)
                    if (o.hash != want.hash || options.force_recreate || o.name != *name) && !options.no_recreate =>
                {
                    Action::Recreate { service: want.service.clone(), index, name: name.clone() }
                }
                Some(o) if o.running => Action::Keep { name: o.name.clone() },
                Some(o) => Action::Start { name: o.name.clone() },
            };
            actions.push(action);
        }
        for o in observed.iter().filter(|o| o.service == want.service && o.index as usize > want.names.len()) {
            actions.push(Action::Remove { name: o.name.clone() });
        }
    }
    for o in observed.iter().filter(|o| !project_services.contains(&o.service)) {
        actions.push(Action::Orphan { name: o.name.clone(), remove: options.remove_orphans });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(service: &str, index: u32, hash: &str, running: bool) -> Observed {
        Observed { name: format!("p-{service}-{index}"), service: service.into(), index, hash: hash.into(), running }
    }

    fn desired(service: &str, hash: &str, replicas: u32) -> Desired {
        Desired {
            service: service.into(),
            hash: hash.into(),
            names: (1..=replicas).map(|i| format!("p-{service}-{i}")).collect(),
        }
    }

    #[test]
    fn only_what_changed_is_recreated() {
        let now = [observed("web", 1, "a", true), observed("db", 1, "b", true), observed("old", 1, "c", true)];
        let services = ["web".to_string(), "db".to_string()];
        let actions = reconcile(&[desired("web", "a2", 1), desired("db", "b", 1)], &services, &now, Options::default());
        assert_eq!(
            actions,
            [
                Action::Recreate { service: "web".into(), index: 1, name: "p-web-1".into() },
                Action::Keep { name: "p-db-1".into() },
                Action::Orphan { name: "p-old-1".into(), remove: false },
            ]
        );
    }

    #[test]
    fn scaling_and_options() {
        let now = [observed("w", 1, "a", false), observed("w", 2, "a", true), observed("w", 3, "a", true)];
        let services = ["w".to_string()];
        let actions = reconcile(&[desired("w", "a", 2)], &services, &now, Options::default());
        assert_eq!(
            actions,
            [
                Action::Start { name: "p-w-1".into() },
                Action::Keep { name: "p-w-2".into() },
                Action::Remove { name: "p-w-3".into() }
            ]
        );
        let forced = reconcile(
            &[desired("w", "a", 1)],
            &services,
            &now[..1],
            Options { force_recreate: true, ..Options::default() },
        );
        assert_eq!(forced, [Action::Recreate { service: "w".into(), index: 1, name: "p-w-1".into() }]);
        let kept = reconcile(
            &[desired("w", "new", 1)],
            &services,
            &now[..1],
            Options { no_recreate: true, ..Options::default() },
        );
        assert_eq!(kept, [Action::Start { name: "p-w-1".into() }]);
        let grown = reconcile(&[desired("w", "a", 4)], &services, &now, Options::default());
        assert_eq!(grown[3], Action::Create { service: "w".into(), index: 4, name: "p-w-4".into() });
    }
}
