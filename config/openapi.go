package config

// OpenAPI lists the interface specs routes with validate: hold requests and answers to.
type OpenAPI struct {
	Specs []string `yaml:"specs"` // OpenAPI 3.0 or 3.1 files, YAML or JSON
}

// RouteValidate says what a route checks against the specs: enforce | report | off.
type RouteValidate struct {
	Request  string `yaml:"request"`
	Response string `yaml:"response"`
}
