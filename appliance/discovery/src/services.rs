//! The DNS-SD services the box announces and their TXT records.

/// Everything the announcements are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The DNS-SD instance name (`percloud`, `Living room`).
    pub instance: String,
    /// The host label, announced as `<hostname>.local`.
    pub hostname: String,
    /// The HTTPS port (web pages and WebDAV).
    pub https_port: u16,
    /// The plain HTTP port when plain HTTP is served to the LAN (then `_webdav._tcp` is
    /// announced too); `None` otherwise.
    pub plain_http_port: Option<u16>,
    /// The stable device id.
    pub device_id: String,
    /// The software version.
    pub version: String,
    /// SHA-256 fingerprint of the TLS server certificate.
    pub fingerprint: String,
}

/// One service to register.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceSpec {
    /// `_https._tcp`
    #[serde(rename = "type")]
    pub service_type: String,
    pub port: u16,
    pub txt: Vec<(String, String)>,
}

impl ServiceSpec {
    /// `_https._tcp.local.`
    pub fn type_domain(&self) -> String {
        format!("{}.local.", self.service_type)
    }
}

/// Longest TXT string (`key=value`) DNS-SD allows.
const TXT_STRING_MAX: usize = 255;

/// The services for `a`: `_https._tcp` (path=/), `_webdavs._tcp` (path=/dav/),
/// `_webdav._tcp` only with plain HTTP on the LAN, and `_percloud._tcp` (id, name, ver, fp).
pub fn services(a: &Announcement) -> Vec<ServiceSpec> {
    let spec = |ty: &str, port: u16, txt: &[(&str, &str)]| ServiceSpec {
        service_type: ty.to_owned(),
        port,
        txt: txt
            .iter()
            .map(|(k, v)| ((*k).to_owned(), fit_txt_value(k, v)))
            .collect(),
    };
    let mut out = vec![
        spec("_https._tcp", a.https_port, &[("path", "/")]),
        spec("_webdavs._tcp", a.https_port, &[("path", "/dav/")]),
    ];
    if let Some(port) = a.plain_http_port {
        out.push(spec("_webdav._tcp", port, &[("path", "/dav/")]));
    }
    out.push(spec(
        "_percloud._tcp",
        a.https_port,
        &[
            ("id", &a.device_id),
            ("name", &a.instance),
            ("ver", &a.version),
            ("fp", &a.fingerprint),
        ],
    ));
    out
}

/// Cuts `value` (at a character boundary) so that `key=value` fits one TXT string.
fn fit_txt_value(key: &str, value: &str) -> String {
    let room = TXT_STRING_MAX.saturating_sub(key.len() + 1);
    let mut end = value.len().min(room);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcement() -> Announcement {
        Announcement {
            instance: "percloud".into(),
            hostname: "percloud".into(),
            https_port: 8443,
            plain_http_port: None,
            device_id: "00ff".into(),
            version: "0.1.0".into(),
            fingerprint: "AB:CD".into(),
        }
    }

    fn txt(spec: &ServiceSpec, key: &str) -> Option<String> {
        spec.txt
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn three_services_without_plain_http() {
        let all = services(&announcement());
        let types: Vec<&str> = all.iter().map(|s| s.service_type.as_str()).collect();
        assert_eq!(types, ["_https._tcp", "_webdavs._tcp", "_percloud._tcp"]);
        assert!(all.iter().all(|s| s.port == 8443));
        assert_eq!(txt(&all[0], "path").as_deref(), Some("/"));
        assert_eq!(txt(&all[1], "path").as_deref(), Some("/dav/"));
        let percloud = &all[2];
        assert_eq!(txt(percloud, "id").as_deref(), Some("00ff"));
        assert_eq!(txt(percloud, "name").as_deref(), Some("percloud"));
        assert_eq!(txt(percloud, "ver").as_deref(), Some("0.1.0"));
        assert_eq!(txt(percloud, "fp").as_deref(), Some("AB:CD"));
        assert_eq!(percloud.type_domain(), "_percloud._tcp.local.");
    }

    #[test]
    fn webdav_only_with_plain_http_on_the_lan() {
        let mut a = announcement();
        a.plain_http_port = Some(80);
        let all = services(&a);
        let dav = all
            .iter()
            .find(|s| s.service_type == "_webdav._tcp")
            .expect("_webdav._tcp");
        assert_eq!(dav.port, 80);
        assert_eq!(txt(dav, "path").as_deref(), Some("/dav/"));
    }

    #[test]
    fn txt_values_fit_one_string() {
        let mut a = announcement();
        a.instance = "é".repeat(200);
        let all = services(&a);
        let name = txt(&all[2], "name").expect("name");
        assert!("name=".len() + name.len() <= 255);
        assert!(name.chars().all(|c| c == 'é'));
    }
}
