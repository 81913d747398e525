//! Domain records to wire types.

use rekey_core::model::{App, AuditEvent, Membership, Org, Outcome, Secret};
use rekey_core::ops::auto_rotation::RotationStatus;
use rekey_core::rotation_policy::{Decision, EffectivePolicy, RotationBlock, RotationPolicy, Wait};
use rekey_proto::native::{
    AppView, AuditEventView, MemberView, OrgView, RotationPolicyView, RotationStatusView,
    SecretView,
};

pub(super) fn org(o: &Org) -> OrgView {
    OrgView {
        id: o.id.0,
        name: o.name.clone(),
        created_at: o.created_at.to_rfc3339(),
    }
}

pub(super) fn member(m: &Membership) -> MemberView {
    MemberView {
        kind: m.principal.kind().to_string(),
        id: m.principal.uuid(),
        role: m.role.as_str().to_string(),
        created_at: m.created_at.to_rfc3339(),
    }
}

pub(super) fn app(a: &App) -> AppView {
    AppView {
        id: a.id.0,
        org_id: a.org_id.0,
        client_id: a.client_id.clone(),
        name: a.name.clone(),
        description: a.description.clone(),
        grant_types: a.grant_types.clone(),
        scopes: a.scopes.clone(),
        access_token_ttl_seconds: a.access_token_ttl_secs,
        secret_lifetime_seconds: a.secret_lifetime_secs,
        rotation_grace_seconds: a.rotation_grace_secs,
        owner_only_secret_rotation: a.owner_only_secret_rotation,
        audiences: a.audiences.clone(),
        rotation_policy: rotation_policy(a.rotation_policy),
        service_account: a.service_account,
        created_at: a.created_at.to_rfc3339(),
        updated_at: a.updated_at.to_rfc3339(),
    }
}

pub(super) fn secret(s: &Secret) -> SecretView {
    SecretView {
        id: s.id.0,
        state: s.state.as_str().to_string(),
        hint: s.hint.clone(),
        created_at: s.created_at.to_rfc3339(),
        expires_at: s.expires_at.map(|t| t.to_rfc3339()),
        last_used_at: s.last_used_at.map(|t| t.to_rfc3339()),
        created_by: s.created_by.clone(),
        revoked_at: s.revoked_at.map(|t| t.to_rfc3339()),
        revoked_reason: s.revoked_reason.clone(),
    }
}

pub(super) fn audit_event(e: &AuditEvent) -> AuditEventView {
    AuditEventView {
        id: e.id.0,
        time: e.time.to_rfc3339(),
        action: e.action.clone(),
        actor: e.actor.clone(),
        org_id: e.org_id.map(|v| v.0),
        app_id: e.app_id.map(|v| v.0),
        secret_id: e.secret_id.map(|v| v.0),
        request_id: e.request_id.clone(),
        source: e.source.clone(),
        outcome: match e.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
        .to_string(),
        // Always an object, as the schema says.
        details: if e.details.is_object() {
            e.details.clone()
        } else {
            serde_json::json!({})
        },
    }
}

pub(super) fn destination(
    d: &rekey_core::notify::Destination,
    signing_secret: Option<String>,
) -> rekey_proto::native::DestinationView {
    use rekey_core::notify::Target;
    let mut v = rekey_proto::native::DestinationView {
        id: d.id.0,
        notification_type: d.notification_type.as_str().to_string(),
        kind: d.target.kind().to_string(),
        queue_url: None,
        region: None,
        endpoint_url: None,
        url: None,
        directory: None,
        secret_id: None,
        signing_secret,
        created_at: d.created_at.to_rfc3339(),
        updated_at: d.updated_at.to_rfc3339(),
    };
    match &d.target {
        Target::Sqs {
            queue_url,
            region,
            endpoint_url,
        } => {
            v.queue_url = Some(queue_url.clone());
            v.region = Some(region.clone());
            v.endpoint_url = endpoint_url.clone();
        }
        Target::Webhook { url } => v.url = Some(url.clone()),
        Target::File { directory } => v.directory = Some(directory.clone()),
        Target::SecretsManager {
            secret_id,
            region,
            endpoint_url,
        } => {
            v.secret_id = Some(secret_id.clone());
            v.region = Some(region.clone());
            v.endpoint_url = endpoint_url.clone();
        }
    }
    v
}

pub(super) fn delivery(d: &rekey_core::notify::Delivery) -> rekey_proto::native::DeliveryView {
    rekey_proto::native::DeliveryView {
        id: d.id.0,
        notification_id: d.notification_id.0,
        app_id: d.app_id.0,
        notification_type: d.notification_type.as_str().to_string(),
        destination_id: d.destination_id.0,
        state: d.state.as_str().to_string(),
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at.to_rfc3339(),
        last_error: d.last_error.clone(),
        created_at: d.created_at.to_rfc3339(),
        delivered_at: d.delivered_at.map(|t| t.to_rfc3339()),
    }
}

pub(super) fn rotation_policy(p: RotationPolicy) -> RotationPolicyView {
    RotationPolicyView {
        rotate_before_expiry_seconds: p.rotate_before_expiry_secs,
        retire_when_unused_seconds: p.retire_when_unused_secs,
    }
}

pub(super) fn policy_from(v: RotationPolicyView) -> RotationPolicy {
    RotationPolicy {
        rotate_before_expiry_secs: v.rotate_before_expiry_seconds,
        retire_when_unused_secs: v.retire_when_unused_seconds,
    }
}

fn effective(p: EffectivePolicy) -> RotationPolicyView {
    RotationPolicyView {
        rotate_before_expiry_seconds: p.rotate_before_expiry_secs,
        retire_when_unused_seconds: p.retire_when_unused_secs,
    }
}

pub(super) fn rotation_status(s: &RotationStatus) -> RotationStatusView {
    let (next_step, reason, until) = match s.decision {
        Decision::Nothing => ("nothing", None, None),
        Decision::Rotate => ("rotate", None, None),
        Decision::Retire => ("retire", None, None),
        Decision::Waiting(w) => (
            "waiting",
            Some(w.as_str()),
            match w {
                Wait::QuietUntil { until } => Some(until),
                _ => None,
            },
        ),
        Decision::RotationBlocked(RotationBlock::NoDestination) => {
            ("blocked", Some("no_destination"), None)
        }
    };
    RotationStatusView {
        app: rotation_policy(s.app),
        org: rotation_policy(s.org),
        effective: effective(s.effective),
        next_rotation_at: s.next_rotation_at.map(|t| t.to_rfc3339()),
        next_step: next_step.into(),
        reason: reason.map(str::to_string),
        waiting_until: until.map(|t| t.to_rfc3339()),
    }
}
