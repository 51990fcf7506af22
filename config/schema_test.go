package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

var updateSchema = flag.Bool("update-schema", false, "rewrite ../config.schema.json from the config types")

// schemaFile is the published schema, at the root of the repository.
const schemaFile = "../config.schema.json"

// The committed config.schema.json is what the types generate: a field added to a
// config type without regenerating it (go generate ./config, or signgate schema)
// fails here.
func TestSchemaFileIsGenerated(t *testing.T) {
	want, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	if *updateSchema {
		if err := os.WriteFile(schemaFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what the config types generate: run go generate ./config (or go test ./config -run TestSchemaFileIsGenerated -update-schema)", schemaFile)
	}
}

// compileSchema compiles Schema() with a real JSON Schema validator.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	data, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("the generated schema does not compile: %v", err)
	}
	return s
}

// yamlToJSON reads a YAML document as an editor's YAML language server does (anchors
// and merges resolved, ${ENV} references left as the strings they are) and returns
// it as a JSON instance.
func yamlToJSON(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// repoConfigs are the config files in the repository, by path from its root.
func repoConfigs(t *testing.T) []string {
	t.Helper()
	files := []string{"config.yaml", "deploy/config.yaml", "config/default.yaml"}
	examples, err := filepath.Glob("../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range examples {
		if strings.HasSuffix(e, ".openapi.yaml") {
			continue // an interface spec a config names, not a config
		}
		files = append(files, strings.TrimPrefix(e, "../"))
	}
	return files
}

// schemaComment is the first line a config carries so editors running the YAML
// language server find the schema, relative to the file at path (from the root).
func schemaComment(path string) string {
	rel := "./config.schema.json"
	if dir := filepath.Dir(path); dir != "." {
		rel = strings.Repeat("../", strings.Count(dir, "/")+1) + "config.schema.json"
	}
	return "# yaml-language-server: $schema=" + rel
}

func TestSchemaValidatesRepositoryConfigs(t *testing.T) {
	s := compileSchema(t)
	for _, path := range repoConfigs(t) {
		t.Run(path, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", path))
			if err != nil {
				t.Fatal(err)
			}
			if first, _, _ := strings.Cut(string(data), "\n"); first != schemaComment(path) {
				t.Errorf("first line is %q, want %q", first, schemaComment(path))
			}
			if err := s.Validate(yamlToJSON(t, data)); err != nil {
				t.Errorf("the schema refuses %s:\n%v", path, err)
			}
		})
	}
}

// A broken config is refused by the schema, as it is by the loader: what an editor
// underlines is what signgate validate would report.
func TestSchemaRefusesBrokenConfigs(t *testing.T) {
	s := compileSchema(t)
	for _, tc := range []struct{ name, yaml string }{
		{"unknown top-level key", "sever: {listen: \":8443\"}\n"},
		{"unknown nested key", "server: {lissen: \":8443\"}\n"},
		{"unknown key in a route", "routes: [{name: a, match: \"GET /a\", upstream: b, upsteam: c}]\n"},
		{"unknown key under a role", "roles: {ops: {allow: [\"* /**\"], unmsk: true}}\n"},
		{"string where an integer goes", "server: {max_body_bytes: lots}\n"},
		{"list where a string goes", "server: {listen: [\":8443\"]}\n"},
		{"mapping where a list goes", "clients: {id: a}\n"},
		{"string where a boolean goes", "server: {pprof: sometimes}\n"},
		{"bad duration", "server: {shutdown_timeout: 30 seconds}\n"},
		{"duration without a unit", "auth: {timestamp_skew: 600}\n"},
		{"bad tls mode", "tls: {mode: letsencrypt}\n"},
		{"bad signature scheme", "clients: [{id: a, api_key_sha256: " + keyA + ", signature: hmac-md5, roles: [r]}]\n"},
		{"bad rate-limit key", "rate_limits: [{key: owner, rate: 1/s}]\n"},
		{"bad rate", "rate_limits: [{key: ip, rate: 20 per second}]\n"},
		{"bad detect word", "masking: {detect: [cn_phone]}\n"},
		{"bad log level", "log: {level: verbose}\n"},
		{"bad cache scope", "routes: [{name: a, match: \"GET /a\", upstream: b, cache: {ttl: 1s, scope: everyone}}]\n"},
		{"api key instead of its hash", "clients: [{id: a, api_key_sha256: demo-miniapp-key, roles: [r]}]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Validate(yamlToJSON(t, []byte(tc.yaml))); err == nil {
				t.Errorf("the schema accepts:\n%s", tc.yaml)
			}
			if _, err := Parse([]byte(tc.yaml), testEnv); err == nil {
				t.Errorf("the loader accepts what the schema refuses:\n%s", tc.yaml)
			}
		})
	}
}

// The schema accepts what the loader takes that a naive schema would not: null for
// a key left out, ${ENV} references for numbers and booleans, merges.
func TestSchemaAcceptsWhatTheLoaderTakes(t *testing.T) {
	s := compileSchema(t)
	for _, tc := range []struct{ name, yaml string }{
		{"empty value", "server:\n  listen:\n  pprof:\nroles:\n  ops:\n"},
		{"integer from the environment", "server: {max_body_bytes: \"${MAX_BODY:-1048576}\"}\n"},
		{"boolean from the environment", "server: {pprof: \"${PPROF:-false}\"}\n"},
		{"duration from the environment", "server: {shutdown_timeout: \"${DRAIN:-30s}\"}\n"},
		{"compound duration", "server: {shutdown_timeout: 1m30s}\n"},
		{"zero duration", "server: {read_timeout: 0}\n"},
		{"merge", "upstreams:\n  a: &u {targets: [\"http://a:1\"]}\n  b: {<<: *u, retries: 0}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Validate(yamlToJSON(t, []byte(tc.yaml))); err != nil {
				t.Errorf("the schema refuses:\n%s\n%v", tc.yaml, err)
			}
			if _, err := Parse([]byte(tc.yaml), nil); err != nil {
				t.Errorf("the loader refuses:\n%s\n%v", tc.yaml, err)
			}
		})
	}
}

// Each enum of the schema is the list validate accepts: every word in it passes
// validation at that key, and a word outside it does not.
func TestSchemaEnumsMatchValidate(t *testing.T) {
	// Where each enum field sits in a file: %s is the value, path its problem path.
	at := map[fieldKey]struct{ yaml, path string }{
		fieldOf[TLS]("Mode"):                     {"tls: {mode: %q}", "tls.mode"},
		fieldOf[TLS]("MinVersion"):               {"tls: {min_version: %q}", "tls.min_version"},
		fieldOf[Client]("Signature"):             {"clients: [{id: a, api_key_sha256: " + keyA + ", signature: %q, roles: [r]}]\nroles: {r: {}}", "clients[0].signature"},
		fieldOf[RateLimitPolicy]("RedisFailure"): {"ratelimit: {redis_failure: %q}", "ratelimit.redis_failure"},
		fieldOf[RateLimit]("Key"):                {"rate_limits: [{key: %q, rate: 1/s}]", "rate_limits[0].key"},
		fieldOf[Route]("Daojia"):                 {"routes: [{name: a, match: \"POST /d/**\", daojia: %q}]", "routes[0].daojia"},
		fieldOf[Route]("Verify"):                 {"routes: [{name: a, match: \"POST /a\", upstream: u, verify: %q}]\nupstreams: {u: {targets: [\"http://u:1\"]}}", "routes[0].verify"},
		fieldOf[Route]("WeChat"):                 {"routes: [{name: a, match: \"POST /a\", wechat: %q}]\nwechat: {appid: wx0123456789abcdef, secret: s}", "routes[0].wechat"},
		fieldOf[Route]("User"):                   {"routes: [{name: a, match: \"GET /a\", upstream: u, user: %q}]\nupstreams: {u: {targets: [\"http://u:1\"]}}\njwt: {hs256_secret: 0123456789abcdef0123456789abcdef}", "routes[0].user"},
		fieldOf[RouteCache]("Scope"):             {"routes: [{name: a, match: \"GET /a\", upstream: u, cache: {ttl: 1s, scope: %q}}]\nupstreams: {u: {targets: [\"http://u:1\"]}}", "routes[0].cache.scope"},
		fieldOf[RouteValidate]("Request"):        {"routes: [{name: a, match: \"POST /a\", upstream: u, validate: {request: %q}}]\nupstreams: {u: {targets: [\"http://u:1\"]}}\nopenapi: {specs: [a.yaml]}", "routes[0].validate.request"},
		fieldOf[RouteValidate]("Response"):       {"routes: [{name: a, match: \"POST /a\", upstream: u, validate: {response: %q}}]\nupstreams: {u: {targets: [\"http://u:1\"]}}\nopenapi: {specs: [a.yaml]}", "routes[0].validate.response"},
		fieldOf[Masking]("Detect"):               {"masking: {detect: [%q]}", "masking.detect[0]"},
		fieldOf[Log]("Level"):                    {"log: {level: %q}", "log.level"},
		fieldOf[Log]("Format"):                   {"log: {format: %q}", "log.format"},
	}
	problemAt := func(yaml, path string) bool {
		_, err := Parse([]byte(yaml), testEnv)
		var errs Errors
		if err != nil && !errors.As(err, &errs) {
			t.Fatalf("Parse: %v", err)
		}
		return slices.ContainsFunc(errs, func(p Problem) bool { return p.Path == path })
	}
	for k, words := range schemaEnums() {
		t.Run(k.t.Name()+"."+k.field, func(t *testing.T) {
			where, ok := at[k]
			if !ok {
				t.Fatalf("no test placement for the enum of %s.%s: add one to this table", k.t.Name(), k.field)
			}
			for _, w := range words {
				if problemAt(fmt.Sprintf(where.yaml, w), where.path) {
					t.Errorf("validate refuses %q at %s, which the schema offers", w, where.path)
				}
			}
			if !problemAt(fmt.Sprintf(where.yaml, "no-such-word"), where.path) {
				t.Errorf("validate accepts a word outside the schema's enum at %s", where.path)
			}
		})
	}
}

// Every oneOf check in the package has its enum in the schema: a new field that takes
// one of a few words and is left out of schemaEnums fails here, by its key's name.
func TestSchemaEnumsCoverEveryOneOf(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	enumKeys := map[string]bool{}
	for k := range schemaEnums() {
		f, _ := k.t.FieldByName(k.field)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		enumKeys[name] = true
	}
	found := 0
	for _, file := range files {
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "oneOf" {
				return true
			}
			// The key is the last string literal of the path argument:
			// "log.level", p+".signature", fmt.Sprintf("masking.detect[%d]", i).
			var last string
			ast.Inspect(call.Args[0], func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					last, _ = strconv.Unquote(lit.Value)
				}
				return true
			})
			last, _, _ = strings.Cut(last, "[")
			key := last[strings.LastIndexByte(last, '.')+1:]
			found++
			if !enumKeys[key] {
				t.Errorf("%s: oneOf on %q has no enum in schemaEnums", fset.Position(call.Pos()), key)
			}
			return true
		})
	}
	if found < len(enumKeys)-2 { // Route.Daojia and Route.Verify are checked by hand
		t.Fatalf("found %d oneOf calls, fewer than the schema's enums: is this test still reading validate.go?", found)
	}
}
