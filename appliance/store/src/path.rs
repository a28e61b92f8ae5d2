//! Validated paths inside a user's tree.
//!
//! Every name that reaches the store passes through [`StorePath::from_segments`]; this is the one
//! place where hostile names (`..`, NUL, `/` inside a name, overlong names) are refused.

use std::fmt;

/// Longest single name, in bytes (as ext4 and most clients allow).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest whole path, in bytes, counting one `/` per segment.
pub const MAX_PATH_BYTES: usize = 4096;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 256;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("empty name in path")]
    EmptyName,
    #[error("name {0:?} is not allowed")]
    DotName(String),
    #[error("name contains a NUL, a slash or a control character")]
    ForbiddenCharacter,
    #[error("name longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
    #[error("path longer than {MAX_PATH_BYTES} bytes")]
    PathTooLong,
    #[error("path deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// A path relative to a user's root: zero or more validated names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StorePath {
    segments: Vec<String>,
}

impl StorePath {
    /// The user's root folder.
    pub fn root() -> Self {
        Self::default()
    }

    /// Builds a path from already-decoded names, validating each one.
    pub fn from_segments<I, S>(segments: I) -> Result<Self, PathError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut path = Self::root();
        let mut total = 0usize;
        for segment in segments {
            let segment = segment.into();
            validate_name(&segment)?;
            total += segment.len() + 1;
            if total > MAX_PATH_BYTES {
                return Err(PathError::PathTooLong);
            }
            path.segments.push(segment);
            if path.segments.len() > MAX_DEPTH {
                return Err(PathError::TooDeep);
            }
        }
        Ok(path)
    }

    /// Parses a `/`-separated path whose names are already decoded; empty segments from
    /// leading, trailing or doubled slashes are ignored.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        Self::from_segments(path.split('/').filter(|s| !s.is_empty()))
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The last name, or `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }

    /// The containing folder, or `None` for the root.
    pub fn parent(&self) -> Option<StorePath> {
        let (_, parent) = self.segments.split_last()?;
        Some(StorePath {
            segments: parent.to_vec(),
        })
    }

    /// This path with one more validated name (this path's names are valid already).
    pub fn join(&self, name: &str) -> Result<StorePath, PathError> {
        validate_name(name)?;
        if self.byte_len() + name.len() + 1 > MAX_PATH_BYTES {
            return Err(PathError::PathTooLong);
        }
        if self.segments.len() + 1 > MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        let mut segments = Vec::with_capacity(self.segments.len() + 1);
        segments.extend(self.segments.iter().cloned());
        segments.push(name.to_owned());
        Ok(StorePath { segments })
    }

    /// Bytes of the `/`-separated form: a slash and the name for each segment.
    pub fn byte_len(&self) -> usize {
        self.segments.iter().map(|s| s.len() + 1).sum()
    }

    /// True when `other` is this path or lies beneath it.
    pub fn contains(&self, other: &StorePath) -> bool {
        other.segments.starts_with(&self.segments)
    }
}

fn validate_name(name: &str) -> Result<(), PathError> {
    if name.is_empty() {
        return Err(PathError::EmptyName);
    }
    if name == "." || name == ".." {
        return Err(PathError::DotName(name.to_owned()));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(PathError::NameTooLong);
    }
    if name
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(PathError::ForbiddenCharacter);
    }
    Ok(())
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for segment in &self.segments {
            write!(f, "/{segment}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_hostile_names() {
        assert_eq!(
            StorePath::parse("a/../b"),
            Err(PathError::DotName("..".into()))
        );
        assert_eq!(
            StorePath::parse("a/./b"),
            Err(PathError::DotName(".".into()))
        );
        assert_eq!(StorePath::parse("a\0b"), Err(PathError::ForbiddenCharacter));
        assert_eq!(
            StorePath::parse("a\\..\\b"),
            Err(PathError::ForbiddenCharacter)
        );
        assert_eq!(
            StorePath::parse(&"x".repeat(256)),
            Err(PathError::NameTooLong)
        );
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert_eq!(StorePath::parse(&deep), Err(PathError::TooDeep));
        let long = vec!["n".repeat(200); 30].join("/");
        assert_eq!(StorePath::parse(&long), Err(PathError::PathTooLong));
    }

    #[test]
    fn join_checks_the_new_name_and_the_limits() {
        let p = StorePath::parse("/Photos").expect("valid");
        assert_eq!(p.join("a.jpg").expect("valid").to_string(), "/Photos/a.jpg");
        assert_eq!(p.join(".."), Err(PathError::DotName("..".into())));
        assert_eq!(p.join("a/b"), Err(PathError::ForbiddenCharacter));
        let at_depth = StorePath::parse(&vec!["d"; MAX_DEPTH].join("/")).expect("valid");
        assert_eq!(at_depth.join("e"), Err(PathError::TooDeep));
        // 20 × 201 bytes: one more name of 120 passes 4096.
        let nearly_long = StorePath::parse(&vec!["n".repeat(200); 20].join("/")).expect("valid");
        assert_eq!(nearly_long.byte_len(), 4020);
        assert_eq!(
            nearly_long.join(&"m".repeat(74)).expect("fits").byte_len(),
            4095
        );
        assert_eq!(
            nearly_long.join(&"m".repeat(120)),
            Err(PathError::PathTooLong)
        );
    }

    #[test]
    fn accepts_ordinary_names() {
        let p = StorePath::parse("/Photos/été 2024/#1 100% ?.jpg").expect("valid");
        assert_eq!(p.segments().len(), 3);
        assert_eq!(p.name(), Some("#1 100% ?.jpg"));
        assert_eq!(p.parent().expect("parent").to_string(), "/Photos/été 2024");
        assert!(StorePath::parse("/Photos").expect("valid").contains(&p));
        assert!(StorePath::parse("//").expect("valid").is_root());
    }
}
