//! Schema URNs and the discovery documents: `/ServiceProviderConfig`, `/ResourceTypes` and
//! `/Schemas` (RFC 7643 §5-7). The schemas list exactly the attributes tokengate keeps; others a
//! directory sends are ignored.

use serde_json::{Value, json};

use super::filter::MAX_FILTER_BYTES;
use super::routes::{MAX_COUNT, MAX_PATCH_OPERATIONS};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const SPC_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// Schema extensions an attribute path may name.
pub const EXTENSION_URNS: [&str; 1] = [ENTERPRISE_URN];

fn attr(name: &str, kind: &str, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": false,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    })
}

fn with(mut v: Value, changes: Value) -> Value {
    for (k, x) in changes.as_object().expect("an object") {
        v[k] = x.clone();
    }
    v
}

fn user_schema() -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": USER_URN,
        "name": "User",
        "description": "A person: a tokengate principal (userName is the principal id)",
        "attributes": [
            with(attr("userName", "string", "The principal id: 1-128 characters from A-Z a-z 0-9 . _ @ : - (not . or ..); cannot change"),
                json!({"required": true, "caseExact": true, "uniqueness": "server", "mutability": "immutable"})),
            with(attr("displayName", "string", "The name shown for this person (accepted absent: then name.formatted, else name.givenName name.familyName, else userName)"),
                json!({"required": true})),
            with(attr("emails", "complex", "One email address is kept: the primary one (`primary` is read, not returned), else the work one, else the first"),
                json!({"multiValued": true, "subAttributes": [
                    attr("value", "string", "The address"),
                    with(attr("type", "string", "Its kind"), json!({"canonicalValues": ["work"]})),
                ]})),
            with(attr("active", "boolean", "false: the person's personal tokens are refused until reactivated (accepted absent: true)"),
                json!({"required": true})),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{USER_URN}")},
    })
}

fn enterprise_schema() -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": ENTERPRISE_URN,
        "name": "EnterpriseUser",
        "description": "Enterprise user: organization is the person's tokengate organization",
        "attributes": [
            attr("organization", "string", "The organization id (1-128 characters from A-Z a-z 0-9 . _ @ : -)"),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{ENTERPRISE_URN}")},
    })
}

fn group_schema() -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": GROUP_URN,
        "name": "Group",
        "description": "A directory group; identity.groups maps its displayName to roles",
        "attributes": [
            with(attr("displayName", "string", "The group's name, unique, as identity.groups names it"),
                json!({"required": true, "uniqueness": "server"})),
            with(attr("members", "complex", "The people in the group"),
                json!({"multiValued": true, "subAttributes": [
                    with(attr("value", "string", "The member's id"), json!({"mutability": "immutable", "caseExact": true})),
                    with(attr("$ref", "reference", "The member's URI"),
                        json!({"mutability": "immutable", "referenceTypes": ["User"], "caseExact": true})),
                ]})),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{GROUP_URN}")},
    })
}

/// Every schema, by id.
pub fn schemas() -> Vec<Value> {
    vec![user_schema(), enterprise_schema(), group_schema()]
}

pub fn resource_types() -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_URN],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "People (tokengate principals)",
            "schema": USER_URN,
            "schemaExtensions": [{"schema": ENTERPRISE_URN, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User"},
        }),
        json!({
            "schemas": [RESOURCE_TYPE_URN],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Directory groups (mapped to roles by identity.groups)",
            "schema": GROUP_URN,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/Group"},
        }),
    ]
}

pub fn service_provider_config() -> Value {
    json!({
        "schemas": [SPC_URN],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": format!(
                "The SCIM token from scim.token_file or TOKENGATE_SCIM_TOKEN. Filters up to {MAX_FILTER_BYTES} bytes, PATCH up to {MAX_PATCH_OPERATIONS} operations."
            ),
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig"},
    })
}
