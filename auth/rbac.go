package auth

import "github.com/signgate/signgate/route"

// Role is what a role grants: the calls it allows and how it sees owners' data.
type Role struct {
	Allow  route.Set
	Mask   bool // responses to this role have PII masked
	Unmask bool // this role sees full values; every such response is audited
}

// AllowSet returns the union of the allow patterns of the named roles, in role order.
// Unknown role names are skipped: config validation refuses them before this runs.
func AllowSet(roles map[string]Role, names []string) route.Set {
	var set route.Set
	for _, n := range names {
		set = append(set, roles[n].Allow...)
	}
	return set
}

// MaskFor returns how a client with the named roles sees owners' data: masked when
// any role says mask, in full (naming the granting role) when any says unmask.
func MaskFor(roles map[string]Role, names []string) (masked bool, unmaskRole string) {
	for _, n := range names {
		r := roles[n]
		if r.Unmask && unmaskRole == "" {
			unmaskRole = n
		}
		masked = masked || r.Mask
	}
	if unmaskRole != "" {
		masked = false
	}
	return masked, unmaskRole
}

// Allowed reports whether c may call method path.
func (c *Client) Allowed(method, path string) bool {
	return c.Allow.Match(method, path)
}
