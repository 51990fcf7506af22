package config

//go:generate sh -c "go run ../cmd/signgate schema > ../config.schema.json"

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// SchemaID is the $id of the published schema, config.schema.json at the root of the
// repository.
const SchemaID = "https://github.com/signgate/signgate/config.schema.json"

// Schema returns the JSON Schema (draft 2020-12) of config.yaml, generated from Config
// by reflection, so a field added to any section is in it the moment it can be
// decoded. It says what the decoder checks: key names (additionalProperties: false,
// as decoding is strict), types, durations, the words a field takes (schemaEnums),
// and the simple shapes of schemaPatterns. Cross-references (a route's upstream
// exists) and bounds stay with `signgate validate`.
//
// Every value may be null (`key:` counts as left out), and a scalar that is not a
// string may be written as a string holding an ${ENV} reference, as the loader
// expands those before it reads the value.
func Schema() ([]byte, error) {
	g := schemaGen{defs: map[string]any{}, enums: schemaEnums(), patterns: schemaPatterns()}
	root := g.structSchema(reflect.TypeFor[Config]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "signgate config.yaml"
	root["description"] = "The configuration of signgate, the signed-request API gateway. Unknown keys are errors; ${NAME} and ${NAME:-default} are read from the environment. `signgate validate` checks what a schema cannot (cross-references, bounds)."
	g.defs["env"] = map[string]any{
		"description": "a value read from the environment when the file is loaded: ${NAME} or ${NAME:-default}",
		"type":        "string",
		"pattern":     envRefPattern,
	}
	root["$defs"] = g.defs
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// envRefPattern matches a string holding an ${ENV} reference (see expand).
const envRefPattern = `\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}`

// durationPattern is what time.ParseDuration accepts ("500ms", "1h30m", "0"), or an
// ${ENV} reference.
const durationPattern = `^([-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)|.*` + envRefPattern + `.*)$`

// fieldKey names one field of one config type.
type fieldKey struct {
	t     reflect.Type
	field string
}

func fieldOf[T any](field string) fieldKey {
	return fieldKey{reflect.TypeFor[T](), field}
}

// schemaEnums lists the words a field takes: the oneOf lists of validate.go
// (TestSchemaEnumsMatchValidate keeps them in step). For a list field they apply to
// each item.
func schemaEnums() map[fieldKey][]string {
	return map[fieldKey][]string{
		fieldOf[TLS]("Mode"):                     {"self_signed", "files", "acme", "off"},
		fieldOf[TLS]("MinVersion"):               {"1.2", "1.3"},
		fieldOf[Client]("Signature"):             {"none", "hmac-sha256", "daojia-md5"},
		fieldOf[RateLimitPolicy]("RedisFailure"): {"local", "open", "closed"},
		fieldOf[Route]("Daojia"):                 {"relay"},
		fieldOf[Route]("Verify"):                 {"", "hmac-sha256", "daojia-md5"},
		fieldOf[Route]("WeChat"):                 {"", "login", "logout"},
		fieldOf[Route]("User"):                   {"", "required"},
		fieldOf[RouteCache]("Scope"):             {"client", "all"},
		fieldOf[RouteValidate]("Request"):        {"", "enforce", "report", "off"},
		fieldOf[RouteValidate]("Response"):       {"", "enforce", "report", "off"},
		fieldOf[Masking]("Detect"):               {"cn_mobile", "cn_id_card"},
		fieldOf[Log]("Level"):                    {"debug", "info", "warn", "error"},
		fieldOf[Log]("Format"):                   {"json", "text"},
	}
}

// schemaPatterns lists the shapes of string fields an editor can check as they are
// typed; validate.go says the same in its messages.
func schemaPatterns() map[fieldKey]string {
	return map[fieldKey]string{
		fieldOf[Client]("APIKeySHA256"): `^[0-9a-f]{64}$`,
		fieldOf[RateLimit]("Rate"):      `^([0-9]+(\.[0-9]*)?|\.[0-9]+)/[smh]$`,
		fieldOf[RateLimit]("Key"):       `^(ip|client|route|user)(\+(ip|client|route|user))*$`,
		fieldOf[Route]("Match"):         `^(\*|[A-Z]+) /`,
	}
}

type schemaGen struct {
	defs     map[string]any
	enums    map[fieldKey][]string
	patterns map[fieldKey]string
}

// structSchema is the object schema of struct type t, its fields named by yaml tag
// as the decoder names them (fieldsByName).
func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	for name, i := range fieldsByName(t) {
		f := t.Field(i)
		props[name] = g.typeSchema(f.Type, fieldKey{t, f.Name})
	}
	return map[string]any{
		"type":                 "object",
		"properties":           props,
		"additionalProperties": false,
	}
}

// typeSchema is the schema of a value of type t held by field k (k for enums and
// patterns; items of a list field share its key).
func (g *schemaGen) typeSchema(t reflect.Type, k fieldKey) map[string]any {
	switch t {
	case durationType:
		// The pattern applies to strings, the bounds to numbers: a bare 0 is a
		// duration too.
		return map[string]any{"type": []string{"string", "integer", "null"}, "pattern": durationPattern,
			"minimum": 0, "maximum": 0,
			"description": `a duration such as "500ms", "10s", "5m" or "2h"`}
	case secretType:
		return nullable(map[string]any{"type": "string",
			"description": "a secret: write ${NAME} to read it from the environment rather than keep it in the file"})
	}
	switch t.Kind() {
	case reflect.Struct:
		name := t.Name()
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = nil // placeholder: a type that holds itself ends here
			g.defs[name] = g.structSchema(t)
		}
		return nullable(map[string]any{"$ref": "#/$defs/" + name})
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			panic(fmt.Sprintf("config: schema: map key %s at %s.%s", t.Key(), k.t.Name(), k.field))
		}
		return nullable(map[string]any{"type": "object", "additionalProperties": g.typeSchema(t.Elem(), k)})
	case reflect.Slice:
		return nullable(map[string]any{"type": "array", "items": g.typeSchema(t.Elem(), k)})
	case reflect.String:
		if words, ok := g.enums[k]; ok {
			return nullable(map[string]any{"enum": words})
		}
		s := map[string]any{"type": "string"}
		if p, ok := g.patterns[k]; ok {
			s["pattern"] = "(" + p + ")|" + envRefPattern
		}
		return nullable(s)
	case reflect.Bool:
		return orEnv(map[string]any{"type": "boolean"})
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return orEnv(map[string]any{"type": "integer"})
	case reflect.Float32, reflect.Float64:
		return orEnv(map[string]any{"type": "number"})
	}
	// As in the decoder: a field of a kind this walker does not know is a bug here,
	// caught by the schema tests.
	panic(fmt.Sprintf("config: schema: cannot describe %s at %s.%s", t, k.t.Name(), k.field))
}

// nullable lets s be null too: the decoder takes `key:` as the key left out.
func nullable(s map[string]any) map[string]any {
	switch typ := s["type"].(type) {
	case string:
		s["type"] = []string{typ, "null"}
		return s
	}
	if words, ok := s["enum"].([]string); ok {
		vals := make([]any, 0, len(words)+1)
		for _, w := range words {
			vals = append(vals, w)
		}
		s["enum"] = append(vals, nil)
		return s
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

// orEnv is the schema of a number or boolean, which the file may also give as an
// ${ENV} reference (a string in YAML), or leave null.
func orEnv(s map[string]any) map[string]any {
	return map[string]any{"anyOf": []any{nullable(s), map[string]any{"$ref": "#/$defs/env"}}}
}
