// Package config loads signgate's config.yaml: it expands ${ENV} references, decodes
// the YAML strictly against the Config struct, fills in defaults and validates the
// result, reporting every problem at once as "path.to.key (line N): message" so an
// operator can fix a file in one pass instead of one error per run.
//
// Decoding walks the yaml.Node tree itself rather than calling yaml.Unmarshal, for
// three reasons: every unknown key and wrong type becomes a Problem with its path and
// line (yaml.v3 stops at or merges its errors), ${NAME} is expanded inside scalar
// values after parsing so line numbers stay true and values need no quoting, and the
// decoder records which keys were written, so a default applies only to an absent
// key: `http_listen: ""` disables the HTTP listener while leaving the key out keeps
// ":8080", and `retries: 0` turns retries off.
//
// A key written with no value (`tls:` or `listen: ~`) counts as absent. `$$` writes a
// literal `$`; `${NAME:-default}` uses default when NAME is unset or empty. Inside a
// flow collection ([ ] or { }) a reference must be quoted, since YAML reads the braces
// there as syntax.
//
// Parse also precomputes what the request path needs (route patterns, role allow sets,
// rate-limit rates), so nothing is parsed per request.
package config
