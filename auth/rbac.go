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

// Allowed reports whether c may call method path.
func (c *Client) Allowed(method, path string) bool {
	return c.Allow.Match(method, path)
}
