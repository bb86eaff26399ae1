//! Problems found in a configuration: which key, which value, what is allowed, and how bad it is.

use std::fmt;

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The broker starts anyway; the operator should look (an unknown key, an option with no effect).
    Warning,
    /// The broker refuses to start with this configuration.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One thing wrong with the configuration, naming the key path, the value and what is allowed.
///
/// Displayed as `error: mqtt.network.port = 70000 (environment variable MQTT_NETWORK_PORT): expected …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Whether start-up fails because of it.
    pub severity: Severity,
    /// Dotted key path, e.g. `mqtt.network.port`.
    pub key: String,
    /// The offending value as written (inline keys redacted), when there is one.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
    /// Where the value came from when an override set it, e.g. `environment variable MQTT_NETWORK_PORT`;
    /// `None` for the configuration file and the built-in defaults.
    pub origin: Option<String>,
}

impl Problem {
    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.key)?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        if let Some(origin) = &self.origin {
            write!(f, " (from {origin})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// Adds one problem.
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    /// True when any problem is an error, i.e. the broker must not start.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Problem::is_error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter().filter(|p| p.is_error())
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter().filter(|p| !p.is_error())
    }

    /// All problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first problem about `key`, if any (handy in tests and tools).
    pub fn find(&self, key: &str) -> Option<&Problem> {
        self.0.iter().find(|p| p.key == key)
    }
}

impl Extend<Problem> for Problems {
    fn extend<T: IntoIterator<Item = Problem>>(&mut self, iter: T) {
        self.0.extend(iter);
    }
}

impl FromIterator<Problem> for Problems {
    fn from_iter<T: IntoIterator<Item = Problem>>(iter: T) -> Self {
        Problems(iter.into_iter().collect())
    }
}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_key_value_origin_and_what_is_allowed() {
        let p = Problem {
            severity: Severity::Error,
            key: "mqtt.network.port".into(),
            value: Some("70000".into()),
            message: "expected a port from 0 to 65535".into(),
            origin: Some("environment variable MQTT_NETWORK_PORT".into()),
        };
        assert_eq!(
            p.to_string(),
            "error: mqtt.network.port = 70000 (from environment variable MQTT_NETWORK_PORT): \
             expected a port from 0 to 65535"
        );
    }

    #[test]
    fn has_errors_ignores_warnings() {
        let warning = Problem {
            severity: Severity::Warning,
            key: "mqtt.prot".into(),
            value: None,
            message: "unknown key".into(),
            origin: None,
        };
        let mut problems: Problems = [warning.clone()].into_iter().collect();
        assert!(!problems.has_errors());
        problems.push(Problem {
            severity: Severity::Error,
            ..warning
        });
        assert!(problems.has_errors());
        assert_eq!(problems.errors().count(), 1);
        assert_eq!(problems.warnings().count(), 1);
    }
}
