# The payments API of the bank reference. A caller works only in its own tenant; a payment (POST)
# needs the `payments:transfer` scope and an amount within the limit of the caller's tier, which
# comes from the static data (`data.tier_limits`). Every refusal says why, with a reason code.
package gw.bank

default decision := {"allow": false, "reason": "not_authorized"}

decision := {"allow": false, "status": 401, "reason": "missing_identity"} if {
	not input.identity
} else := {"allow": false, "reason": "tenant_mismatch"} if {
	not same_tenant
} else := {"allow": false, "reason": "missing_transfer_scope"} if {
	input.request.method == "POST"
	not "payments:transfer" in input.identity.scopes
} else := {"allow": false, "reason": "amount_over_tier_limit"} if {
	input.request.method == "POST"
	not within_limit
} else := {"allow": true, "headers": {"x-policy-tier": tier}}

same_tenant if input.identity.tenant == input.request.path_params.tenant

tier := object.get(input.identity, ["claims", "tier"], "free")

within_limit if {
	is_number(input.body.amount)
	input.body.amount > 0
	input.body.amount <= data.tier_limits[tier]
}
