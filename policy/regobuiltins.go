//go:build !custody_norego

package policy

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// regoAllowed are the only builtins a policy's Rego may call: pure functions
// of their arguments. Anything else — http.send, net.*, opa.runtime, rand.*,
// uuid.rfc4122, io.jwt.* (which may fetch keys), trace and print, schema
// checks that may fetch a $ref, and every builtin a later OPA release adds —
// is refused when the policy is loaded, because a rule that reaches the
// network, the process or a random source would decide on data that was
// never verified, or decide differently twice on the same evidence.
//
// time.now_ns is allowed: Eval pins it to the decision's time (EvalTime).
var regoAllowed = setOf(
	// operators and the statements that compile to calls
	"assign", "eq", "equal", "neq", "gt", "gte", "lt", "lte",
	"plus", "minus", "mul", "div", "rem", "and", "or",
	"internal.member_2", "internal.member_3", "internal.template_string",
	// numbers and aggregates
	"abs", "ceil", "floor", "round", "to_number", "format_int",
	"count", "sum", "product", "max", "min", "sort", "numbers.range", "numbers.range_step",
	"bits.and", "bits.or", "bits.xor", "bits.negate", "bits.lsh", "bits.rsh",
	// types
	"is_array", "is_boolean", "is_null", "is_number", "is_object", "is_set", "is_string", "type_name",
	// strings, regular expressions, globs
	"concat", "contains", "endswith", "startswith", "indexof", "indexof_n", "lower", "upper",
	"replace", "split", "sprintf", "substring", "trim", "trim_left", "trim_prefix", "trim_right",
	"trim_space", "trim_suffix", "strings.any_prefix_match", "strings.any_suffix_match",
	"strings.count", "strings.replace_n", "strings.reverse", "strings.split_n",
	"regex.match", "regex.is_valid", "regex.find_n", "regex.find_all_string_submatch_n",
	"regex.replace", "regex.split", "regex.globs_match", "regex.template_match",
	"glob.match", "glob.quote_meta",
	// arrays, sets, objects
	"array.concat", "array.flatten", "array.reverse", "array.slice",
	"intersection", "union", "graph.reachable", "graph.reachable_paths", "walk",
	"object.filter", "object.get", "object.keys", "object.remove", "object.subset",
	"object.union", "object.union_n", "json.filter", "json.remove", "json.patch",
	// encodings
	"base64.encode", "base64.decode", "base64.is_valid", "base64url.encode",
	"base64url.encode_no_pad", "base64url.decode", "hex.encode", "hex.decode",
	"json.marshal", "json.marshal_with_options", "json.unmarshal", "json.is_valid",
	"yaml.marshal", "yaml.unmarshal", "yaml.is_valid",
	"urlquery.encode", "urlquery.decode", "urlquery.encode_object", "urlquery.decode_object",
	// units, versions, time, digests
	"units.parse", "units.parse_bytes", "semver.compare", "semver.is_valid",
	"time.now_ns", "time.parse_ns", "time.parse_rfc3339_ns", "time.parse_duration_ns",
	"time.add_date", "time.clock", "time.date", "time.diff", "time.format", "time.weekday",
	"crypto.md5", "crypto.sha1", "crypto.sha256",
	"crypto.hmac.md5", "crypto.hmac.sha1", "crypto.hmac.sha256", "crypto.hmac.sha512", "crypto.hmac.equal",
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// regoCapabilities are this OPA's capabilities with only the allowed
// builtins: the compiler itself then refuses any other, also one that
// checkBuiltins did not see.
func regoCapabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	var keep []*ast.Builtin
	for _, b := range c.Builtins {
		if regoAllowed[b.Name] {
			keep = append(keep, b)
		}
	}
	c.Builtins = keep
	return c
}

// checkBuiltins refuses a module that calls a builtin not in regoAllowed,
// naming the first one and its line. Calls of the module's own functions
// and of names that are no builtin are left to the compiler.
func checkBuiltins(mod *ast.Module) error {
	var bad error
	ast.WalkTerms(mod, func(t *ast.Term) bool {
		if bad != nil {
			return true
		}
		call, ok := t.Value.(ast.Call)
		if !ok || len(call) == 0 {
			return false
		}
		if ref, ok := call[0].Value.(ast.Ref); ok {
			bad = refuseBuiltin(ref, t.Location)
		}
		return bad != nil
	})
	if bad != nil {
		return bad
	}
	ast.WalkExprs(mod, func(e *ast.Expr) bool {
		if bad == nil && e.IsCall() {
			bad = refuseBuiltin(e.Operator(), e.Location)
		}
		return bad != nil
	})
	return bad
}

// refuseBuiltin returns an error if ref names a builtin that is not allowed.
func refuseBuiltin(ref ast.Ref, loc *ast.Location) error {
	name := ref.String()
	if _, builtin := ast.BuiltinMap[name]; !builtin || regoAllowed[name] {
		return nil
	}
	line := 0
	if loc != nil {
		line = loc.Row
	}
	return fmt.Errorf("rego line %d: builtin %s is not allowed (policies may call only pure builtins: no network, runtime, randomness, trace or print)", line, name)
}
