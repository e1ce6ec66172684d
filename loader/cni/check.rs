//! CHECK: is dnsredir attached in the pod as its configuration says? Judged from what the kernel
//! holds ([`inspect::status`]: filters, programs, the configuration read back from their maps),
//! as `--status` sees it.

use super::error::{code, CniError};
use crate::inspect::{self, Build, Status};
use crate::namespace::resolv_conf::Nameservers;
use crate::redirect::rules::{Rule, Rules};
use crate::redirect::{AttachRequest, Resolvers};
use crate::settings::{Path, Settings};
use std::net::SocketAddrV6;

pub fn check(request: &AttachRequest) -> Result<(), CniError> {
    let status = inspect::status(&request.target)
        .map_err(|e| CniError::from_error(code::INSPECT_FAILED, &e))?;
    judge(request, &status)
}

/// The verdict on `status` (pure, so every case is tested without a namespace).
pub fn judge(request: &AttachRequest, status: &Status) -> Result<(), CniError> {
    let target = &request.target;
    if status.found.filters.is_empty() {
        return Err(CniError::new(
            code::NOT_ATTACHED,
            format!("dnsredir is not attached in {target}"),
        ));
    }
    // Version skew: a pod attached before the binary was upgraded keeps working; this build
    // does not judge another's configuration, and says so rather than failing on it.
    let other = match status.maps.build {
        Some(Build::This) | None => None,
        Some(Build::SameLayout { build_id }) => Some(format!("object fnv1a64 {build_id:016x}")),
        Some(Build::OtherLayout { layout, build_id }) => Some(format!(
            "object fnv1a64 {build_id:016x}, configuration layout {layout}"
        )),
        Some(Build::Unknown) => Some("a build older than the configuration header".to_string()),
    };
    if let Some(which) = other {
        return Err(CniError::new(
            code::OTHER_BUILD,
            format!("dnsredir in {target} was attached by another dnsredir build ({which}), whose configuration this build does not check"),
        )
        .with_details("DEL removes it whatever build attached it; ADD again attaches this build"));
    }
    if !status.attached() {
        return Err(CniError::new(
            code::NOT_ATTACHED,
            format!(
                "dnsredir is only half attached in {target}{}",
                inspect::describe_filters(&status.found)
            ),
        ));
    }
    let Some(settings) = &status.settings else {
        return Err(CniError::new(
            code::INSPECT_FAILED,
            format!("dnsredir's configuration in {target} could not be read back"),
        ));
    };
    let mut differences = differences(
        request,
        settings,
        status.interface(),
        status.maps.rules.as_ref(),
    );
    differences.extend(status.stale.iter().cloned());
    if differences.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            code::ATTACHED_OTHERWISE,
            format!(
                "dnsredir in {target} is not attached as the configuration says: {}",
                differences.join("; ")
            ),
        ))
    }
}

/// What the attachment in force does otherwise than `request` asks, one phrase each.
pub fn differences(
    request: &AttachRequest,
    settings: &Settings,
    interface: Option<&str>,
    rules: Option<&Rules>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, attached: String, configured: String| {
        if attached != configured {
            out.push(format!(
                "{what} is {attached}, the configuration says {configured}"
            ));
        }
    };
    if let Path::EmbeddedResolver { .. } = settings.path {
        differ(
            "the path",
            settings.path.name().into(),
            "nameservers".into(),
        );
    }
    let wanted_interface = request.interface.as_deref().unwrap_or("?");
    differ(
        "the interface",
        interface.unwrap_or("none").into(),
        wanted_interface.into(),
    );
    differ(
        "the upstream",
        settings.upstream.to_string(),
        crate::settings::Upstream(request.upstream).to_string(),
    );
    // What the configuration asks to take over, and whether every server is.
    let (wanted, wanted_any) = match &request.resolvers {
        Resolvers::Named(named) => (named.clone(), false),
        Resolvers::Any => (Nameservers::default(), true),
        Resolvers::FromNamespace => (Nameservers::default(), false),
    };
    let in_force_any = matches!(settings.path, Path::Nameservers { any: true, .. });
    let taken = |any: bool, list: String| {
        if any {
            "any (port 53)".to_string()
        } else {
            list
        }
    };
    differ(
        "the nameservers taken over",
        taken(in_force_any, sorted(settings.nameservers())),
        taken(wanted_any, sorted(&wanted.v4)),
    );
    // An IPv6 upstream configured but not in force is what ADD does on an interface without
    // a global IPv6 address (it says so then): not a difference.
    if let Some(v6) = settings.ipv6() {
        differ(
            "the IPv6 upstream",
            v6.upstream.to_string(),
            request
                .upstream6
                .map_or("none".into(), |u: SocketAddrV6| u.to_string()),
        );
        differ(
            "the IPv6 nameservers taken over",
            taken(in_force_any, sorted(&v6.nameservers)),
            taken(wanted_any, sorted(&wanted.v6)),
        );
    }
    differ(
        "edns_max",
        settings.edns_max.to_string(),
        request.edns_max.to_string(),
    );
    let describe = |rules: &[Rule]| {
        let mut text: Vec<String> = rules
            .iter()
            .map(|r| format!("{} {}", r.kind.name(), r.suffix))
            .collect();
        text.sort();
        format!("[{}]", text.join(", "))
    };
    differ(
        "the name rules",
        rules.map_or("unreadable".into(), |r| describe(&r.rules)),
        describe(&request.rules.rules),
    );
    out
}

fn sorted<T: ToString>(items: &[T]) -> String {
    let mut text: Vec<String> = items.iter().map(T::to_string).collect();
    text.sort();
    format!("[{}]", text.join(", "))
}
