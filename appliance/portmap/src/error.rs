//! What went wrong talking to the router, with the UPnP error codes spelled out.

use std::fmt;

/// A failure of one exchange with the gateway; each variant names the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// No Internet Gateway Device answered the search.
    #[error("no UPnP Internet Gateway Device found on the network ({detail})")]
    NoGateway { detail: String },
    /// The gateway answered an action with a UPnP error.
    #[error("the router refused {action}: UPnP error {code} {}", UpnpCode(*code))]
    Refused { action: &'static str, code: u16 },
    /// Every configured external port is mapped to another host.
    #[error("every external port ({ports:?}) is mapped to another host (UPnP error 718)")]
    AllPortsTaken { ports: Vec<u16> },
    /// The gateway could not be reached or answered nonsense.
    #[error("{action} failed: {detail}")]
    Transport {
        action: &'static str,
        detail: String,
    },
}

impl RouterError {
    /// The UPnP error code, when the router refused.
    pub fn code(&self) -> Option<u16> {
        match self {
            RouterError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Displays a UPnP IGD error code as its name and meaning.
#[derive(Debug, Clone, Copy)]
pub struct UpnpCode(pub u16);

impl fmt::Display for UpnpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(upnp_meaning(self.0))
    }
}

/// Name and meaning of the UPnP IGD (WANIPConnection) error codes.
pub fn upnp_meaning(code: u16) -> &'static str {
    match code {
        401 => "InvalidAction (the router does not know this action)",
        402 => "InvalidArgs (the router rejected the arguments)",
        501 => {
            "ActionFailed (the router could not do it; miniupnpd answers this when its own \
                internet address is private or reserved, i.e. double NAT)"
        }
        606 => "ActionNotAuthorized (UPnP port mapping is disabled or restricted on the router)",
        713 => "SpecifiedArrayIndexInvalid",
        714 => "NoSuchEntryInArray (no such mapping)",
        715 => "WildCardNotPermittedInSrcIP",
        716 => "WildCardNotPermittedInExtPort",
        718 => "ConflictInMappingEntry (the port is mapped to another host)",
        724 => "SamePortValuesRequired (the router maps a port only to the same internal port)",
        725 => "OnlyPermanentLeasesSupported (the router accepts only lease 0)",
        726 => "RemoteHostOnlySupportsWildcard",
        727 => "ExternalPortOnlySupportsWildcard",
        728 => "NoPortMapsAvailable (the router's mapping table is full)",
        729 => "ConflictWithOtherMechanisms (the port is used by another router service)",
        _ => "(unknown UPnP error)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_code_and_meaning() {
        let err = RouterError::Refused {
            action: "AddPortMapping",
            code: 718,
        };
        let text = err.to_string();
        assert!(
            text.contains("718") && text.contains("ConflictInMappingEntry"),
            "{text}"
        );
        assert_eq!(err.code(), Some(718));
        assert!(upnp_meaning(501).contains("double NAT"));
        assert!(upnp_meaning(725).contains("lease 0"));
    }
}
