//! [`Policy`]: the decisions of one users file, and [`UsersAccess`], the [`AccessControl`] the
//! broker holds, whose policy can be swapped while connections run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use argon2::password_hash::PasswordHash;

use crate::users::{RuleEntry, UsersFile, UsersFileError};
use crate::{AccessControl, ConnectRequest, Identity, PublishAction, Refusal, filter};

/// The name of the role that applies to clients without a user.
pub const ANONYMOUS_ROLE: &str = "anonymous";

#[derive(Debug, Clone, Copy)]
enum Verb {
    Read,
    Insert,
    Update,
    Delete,
}

#[derive(Debug)]
struct Rule {
    topic: String,
    /// Whether `topic` holds `%u` or `%c`.
    templated: bool,
    read: Option<bool>,
    insert: Option<bool>,
    update: Option<bool>,
    delete: Option<bool>,
}

impl Rule {
    fn new(entry: &RuleEntry) -> Self {
        Self {
            templated: entry.topic.contains("%u") || entry.topic.contains("%c"),
            topic: entry.topic.clone(),
            read: entry.read,
            insert: entry.insert,
            update: entry.update,
            delete: entry.delete,
        }
    }

    fn decides(&self, verb: Verb) -> Option<bool> {
        match verb {
            Verb::Read => self.read,
            Verb::Insert => self.insert,
            Verb::Update => self.update,
            Verb::Delete => self.delete,
        }
    }

    /// The rule's filter for this client, or `None` when a substitution would inject
    /// wildcards or levels (a user called `+` must not get everyone's topics) or there is no
    /// user to substitute.
    fn filter_for<'a>(
        &'a self,
        user: Option<&str>,
        client_id: &str,
    ) -> Option<std::borrow::Cow<'a, str>> {
        if !self.templated {
            return Some(std::borrow::Cow::Borrowed(&self.topic));
        }
        let safe = |v: &str| !v.is_empty() && !v.contains(['/', '+', '#']);
        let mut text = self.topic.clone();
        if text.contains("%u") {
            let user = user.filter(|u| safe(u))?;
            text = text.replace("%u", user);
        }
        if text.contains("%c") {
            if !safe(client_id) {
                return None;
            }
            text = text.replace("%c", client_id);
        }
        // A name starting with `$` must not turn `%c/#` into `$SYS/#`: a substitution never
        // yields a `$` topic the rule did not name itself.
        if text.starts_with('$') && !self.topic.starts_with('$') {
            return None;
        }
        Some(std::borrow::Cow::Owned(text))
    }
}

#[derive(Debug, Default)]
struct Role {
    super_user: bool,
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct User {
    hash: Option<String>,
    roles: Vec<Arc<Role>>,
    active: bool,
}

/// The decisions of one users file. Immutable: a changed file makes a new policy.
#[derive(Debug)]
pub struct Policy {
    users: HashMap<String, User>,
    anonymous: Arc<Role>,
    require_authentication: bool,
}

impl Policy {
    /// The policy of a checked users file. With `require_authentication`, a client needs
    /// valid credentials (or a certificate-derived user); without it, a client without a user
    /// connects as anonymous and gets the `anonymous` role.
    pub fn new(file: &UsersFile, require_authentication: bool) -> Self {
        let roles: HashMap<&str, Arc<Role>> = file
            .roles
            .iter()
            .map(|(name, r)| {
                let role = Role {
                    super_user: r.super_user,
                    rules: r.permissions.iter().map(Rule::new).collect(),
                };
                (name.as_str(), Arc::new(role))
            })
            .collect();
        let users = file
            .users
            .iter()
            .map(|(name, u)| {
                let user = User {
                    hash: u.password.clone(),
                    roles: u
                        .roles
                        .iter()
                        .filter_map(|r| roles.get(r.as_str()).cloned())
                        .collect(),
                    active: u.active,
                };
                (name.clone(), user)
            })
            .collect();
        Self {
            users,
            anonymous: roles.get(ANONYMOUS_ROLE).cloned().unwrap_or_default(),
            require_authentication,
        }
    }

    fn roles(&self, identity: &Identity) -> &[Arc<Role>] {
        match identity.user.as_deref() {
            Some(user) => self
                .users
                .get(user)
                .map_or(&[], |u| if u.active { u.roles.as_slice() } else { &[] }),
            None => std::slice::from_ref(&self.anonymous),
        }
    }

    /// First matching rule naming the verb decides, per role; any role allowing is enough.
    fn allows(&self, identity: &Identity, client_id: &str, topic: &str, verb: Verb) -> bool {
        let user = identity.user.as_deref();
        self.roles(identity).iter().any(|role| {
            if role.super_user {
                return true;
            }
            for rule in &role.rules {
                let Some(decision) = rule.decides(verb) else {
                    continue;
                };
                let Some(f) = rule.filter_for(user, client_id) else {
                    continue;
                };
                if filter::matches(&f, topic) {
                    return decision;
                }
            }
            false
        })
    }

    /// True if the user exists and is active (for disconnecting users a reload removed).
    pub fn is_active(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.active)
    }

    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Identity, Refusal> {
        // A verified client certificate that names a user logs in as that user, whatever the
        // CONNECT user name says; one naming a deactivated user logs nobody in. One naming no
        // user at all is refused when authentication is required, and is anonymous otherwise
        // (as the same client without a certificate would be).
        if let Some(name) = request.certificate_user {
            return match self.users.get(name) {
                Some(u) if u.active => Ok(Identity {
                    user: Some(Arc::from(name)),
                }),
                None if !self.require_authentication => Ok(Identity { user: None }),
                _ => Err(Refusal::NotAuthorized),
            };
        }
        if let Some(name) = request.username {
            let user = self.users.get(name);
            let Some(password) = request.password else {
                return Err(Refusal::BadCredentials);
            };
            // An unknown user, or one without a password, is checked against a dummy hash: the
            // answer takes as long as for a real user, so its timing does not tell which user
            // names exist.
            let hash = user.and_then(|u| u.hash.as_deref());
            let verified = verify_password(hash.unwrap_or_else(|| dummy_hash()), password);
            let Some(user) = user.filter(|_| verified && hash.is_some()) else {
                return Err(Refusal::BadCredentials);
            };
            if !user.active {
                return Err(Refusal::NotAuthorized);
            }
            return Ok(Identity {
                user: Some(Arc::from(name)),
            });
        }
        if self.require_authentication {
            return Err(Refusal::NotAuthorized);
        }
        Ok(Identity { user: None })
    }

    fn may_subscribe(&self, identity: &Identity, client_id: &str, sub: &str) -> bool {
        let user = identity.user.as_deref();
        self.roles(identity).iter().any(|role| {
            if role.super_user {
                return true;
            }
            // Granted when some rule could allow reading a topic of the filter before a rule
            // denies the whole filter; delivery then checks each topic.
            for rule in &role.rules {
                let Some(decision) = rule.decides(Verb::Read) else {
                    continue;
                };
                let Some(f) = rule.filter_for(user, client_id) else {
                    continue;
                };
                if decision
                    && filter::overlaps(&f, sub)
                    && !(sub.starts_with('$') && f.starts_with(['+', '#']))
                {
                    return true;
                }
                if !decision && filter::covers(&f, sub) {
                    return false;
                }
            }
            false
        })
    }
}

/// Whether `password` matches the Argon2 PHC string `hash` (compared in constant time); a hash
/// that does not parse matches nothing.
///
/// Argon2 needs `m` KiB of working memory (19 MiB by default). It is kept per thread and
/// reused: a thread that checks passwords holds one such buffer, instead of allocating one per
/// check, which the allocator keeps around in every thread's arena.
fn verify_password(hash: &str, password: &[u8]) -> bool {
    use argon2::{Algorithm, Argon2, Block, Params, Version};
    use std::cell::RefCell;

    thread_local! {
        static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let Ok(version) = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let hashed = MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
            .is_ok()
    });
    // `Output` compares in constant time.
    hashed && argon2::password_hash::Output::new(&out).is_ok_and(|out| out == expected)
}

/// An Argon2id hash of a random password, made once with the parameters of real ones
/// ([`hash_password`](crate::hash_password)): what unknown users are checked against.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        crate::hash_password(&crate::generate_password()).unwrap_or_else(|_| {
            // Hashing a fresh password does not fail; should it, a fixed hash of the same cost
            // keeps the timing.
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned()
        })
    })
}

/// The [`AccessControl`] the broker holds: the current [`Policy`], swapped whole on reload so
/// a decision never sees half a change and never waits on file I/O.
#[derive(Debug)]
pub struct UsersAccess {
    path: PathBuf,
    require_authentication: bool,
    current: RwLock<Arc<Policy>>,
    /// Bumped by every reload (see [`AccessControl::revision`]).
    revision: AtomicU64,
}

impl UsersAccess {
    /// Loads the users file at `path`.
    pub fn load(path: &Path, require_authentication: bool) -> Result<Self, UsersFileError> {
        let file = UsersFile::load(path)?;
        Ok(Self {
            path: path.to_owned(),
            require_authentication,
            current: RwLock::new(Arc::new(Policy::new(&file, require_authentication))),
            revision: AtomicU64::new(0),
        })
    }

    /// Re-reads the file. On error the old policy stays in force and the error is returned.
    pub fn reload(&self) -> Result<(), UsersFileError> {
        let file = UsersFile::load(&self.path)?;
        let policy = Arc::new(Policy::new(&file, self.require_authentication));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = policy;
        self.revision.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// The file this policy comes from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl AccessControl for UsersAccess {
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Identity, Refusal> {
        self.policy().authenticate(request)
    }

    fn may_publish(
        &self,
        identity: &Identity,
        client_id: &str,
        topic: &str,
        action: PublishAction,
    ) -> bool {
        let verb = match action {
            PublishAction::Insert => Verb::Insert,
            PublishAction::Update => Verb::Update,
            PublishAction::Delete => Verb::Delete,
        };
        self.policy().allows(identity, client_id, topic, verb)
    }

    fn may_subscribe(&self, identity: &Identity, client_id: &str, filter: &str) -> bool {
        self.policy().may_subscribe(identity, client_id, filter)
    }

    fn may_read(&self, identity: &Identity, client_id: &str, topic: &str) -> bool {
        self.policy().allows(identity, client_id, topic, Verb::Read)
    }

    fn is_identity_valid(&self, identity: &Identity) -> bool {
        identity
            .user
            .as_deref()
            .is_none_or(|u| self.policy().is_active(u))
    }

    fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "
users:
  alice: { password: 'HASH', roles: [sensors] }
  root: { password: 'HASH', roles: [super] }
  idle: { password: 'HASH', roles: [sensors], active: false }
roles:
  super: { superUser: true }
  sensors:
    permissions:
      - { topic: 'devices/%u/secret', read: false }
      - { topic: 'devices/%u/#', read: true, insert: true, update: true, delete: true }
      - { topic: 'alerts/#', read: true }
  anonymous:
    permissions:
      - { topic: 'private/#', read: false, insert: false }
      - { topic: 'public/#', read: true, insert: true }
";

    fn policy() -> Policy {
        policy_requiring(false)
    }

    fn policy_requiring(require_authentication: bool) -> Policy {
        let file = UsersFile::parse(
            FILE.replace(
                "HASH",
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            )
            .as_str(),
            Path::new("u.yaml"),
        )
        .unwrap();
        Policy::new(&file, require_authentication)
    }

    fn id(user: Option<&str>) -> Identity {
        Identity {
            user: user.map(Arc::from),
        }
    }

    #[test]
    fn first_matching_rule_decides_each_verb() {
        let p = policy();
        let alice = id(Some("alice"));
        assert!(p.allows(&alice, "c", "devices/alice/temp", Verb::Insert));
        assert!(!p.allows(&alice, "c", "devices/bob/temp", Verb::Insert));
        assert!(!p.allows(&alice, "c", "devices/alice/secret", Verb::Read));
        assert!(p.allows(&alice, "c", "alerts/fire", Verb::Read));
        assert!(!p.allows(&alice, "c", "alerts/fire", Verb::Insert));
    }

    #[test]
    fn user_names_cannot_inject_wildcards() {
        let file = UsersFile::parse(
            "users:\n  '+': { roles: [r] }\nroles:\n  r: { permissions: [ { topic: 'devices/%u/#', read: true } ] }\n",
            Path::new("u.yaml"),
        )
        .unwrap();
        let p = Policy::new(&file, true);
        assert!(!p.allows(&id(Some("+")), "c", "devices/alice/t", Verb::Read));
    }

    #[test]
    fn client_ids_and_user_names_cannot_reach_dollar_topics() {
        let file = UsersFile::parse(
            "users:\n  '$SYS': { roles: [r] }\nroles:\n  r: { permissions: [ { topic: '%c/#', read: true, insert: true }, { topic: '%u/#', read: true } ] }\n",
            Path::new("u.yaml"),
        )
        .unwrap();
        let p = Policy::new(&file, true);
        let user = id(Some("$SYS"));
        assert!(!p.allows(&user, "$SYS", "$SYS/broker/uptime", Verb::Read));
        assert!(!p.allows(&user, "$SYS", "$SYS/broker/uptime", Verb::Insert));
        assert!(!p.may_subscribe(&user, "$SYS", "$SYS/#"));
        assert!(
            p.allows(&user, "c1", "c1/x", Verb::Read),
            "a plain id still works"
        );
    }

    #[test]
    fn anonymous_role_and_sys_topics() {
        let p = policy();
        let anon = id(None);
        assert!(p.allows(&anon, "c", "public/x", Verb::Insert));
        assert!(!p.allows(&anon, "c", "private/x", Verb::Read));
        assert!(!p.allows(&anon, "c", "other", Verb::Read));
        assert!(!p.allows(&id(Some("alice")), "c", "$SYS/broker/uptime", Verb::Read));
        assert!(p.allows(&id(Some("root")), "c", "$SYS/broker/uptime", Verb::Read));
        assert!(!p.allows(&id(Some("idle")), "c", "devices/idle/x", Verb::Read));
    }

    #[test]
    fn a_certificate_naming_no_user_is_anonymous_unless_authentication_is_required() {
        let request = |p: &Policy| {
            p.authenticate(&ConnectRequest {
                client_id: "c",
                username: None,
                password: None,
                peer: "127.0.0.1:1".parse().unwrap(),
                certificate_user: Some("stranger"),
            })
        };
        assert_eq!(request(&policy()), Ok(id(None)));
        assert_eq!(
            request(&policy_requiring(true)),
            Err(Refusal::NotAuthorized)
        );
    }

    #[test]
    fn passwords_verify_against_hashes_of_any_parameters() {
        let hash = crate::hash_password("right").unwrap();
        assert!(verify_password(&hash, b"right"));
        assert!(!verify_password(&hash, b"wrong"));
        // Other costs and algorithms than ours, as another tool may have written them.
        let salt = argon2::password_hash::SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap();
        for (algorithm, m, t) in [
            (argon2::Algorithm::Argon2id, 8, 1),
            (argon2::Algorithm::Argon2i, 64, 3),
            (argon2::Algorithm::Argon2d, 32, 2),
        ] {
            use argon2::password_hash::PasswordHasher;
            let params = argon2::Params::new(m, t, 1, None).unwrap();
            let other = argon2::Argon2::new(algorithm, argon2::Version::V0x13, params)
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string();
            assert!(verify_password(&other, b"pw"), "{other}");
            assert!(!verify_password(&other, b"px"), "{other}");
        }
        assert!(!verify_password("not a hash", b"right"));
        assert!(!verify_password(
            &hash.replace("$argon2id$", "$scrypt$"),
            b"right"
        ));
    }

    #[test]
    fn unknown_users_take_as_long_as_known_ones() {
        let hash = crate::hash_password("right").unwrap();
        let file = UsersFile::parse(
            &format!(
                "users:\n  alice: {{ password: '{hash}', roles: [] }}\n  nopass: {{ roles: [] }}\n"
            ),
            Path::new("u.yaml"),
        )
        .unwrap();
        let p = Policy::new(&file, true);
        let login = |user: &str, password: &str| {
            let start = std::time::Instant::now();
            let verdict = p.authenticate(&ConnectRequest {
                client_id: "c",
                username: Some(user),
                password: Some(password.as_bytes()),
                peer: "127.0.0.1:1".parse().unwrap(),
                certificate_user: None,
            });
            (verdict, start.elapsed())
        };
        let _ = login("nobody", "x"); // makes the dummy hash
        let (ok, _) = login("alice", "right");
        assert_eq!(ok, Ok(id(Some("alice"))));
        let (known, known_took) = login("alice", "wrong");
        let (unknown, unknown_took) = login("nobody", "wrong");
        let (no_hash, no_hash_took) = login("nopass", "wrong");
        assert_eq!(known, Err(Refusal::BadCredentials));
        assert_eq!(unknown, Err(Refusal::BadCredentials));
        assert_eq!(no_hash, Err(Refusal::BadCredentials));
        // Both hash: an unknown name is not answered in a fraction of the time.
        assert!(
            unknown_took * 3 > known_took,
            "{unknown_took:?} vs {known_took:?}"
        );
        assert!(
            no_hash_took * 3 > known_took,
            "{no_hash_took:?} vs {known_took:?}"
        );
    }

    #[test]
    fn subscribe_is_granted_when_partly_allowed() {
        let p = policy();
        let alice = id(Some("alice"));
        assert!(p.may_subscribe(&alice, "c", "devices/#"));
        assert!(p.may_subscribe(&alice, "c", "devices/alice/+"));
        assert!(!p.may_subscribe(&alice, "c", "devices/alice/secret"));
        assert!(!p.may_subscribe(&alice, "c", "factory/#"));
        assert!(!p.may_subscribe(&alice, "c", "$SYS/#"));
        assert!(p.may_subscribe(&id(Some("root")), "c", "$SYS/#"));
    }
}
