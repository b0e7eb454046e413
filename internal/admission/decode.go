package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"
)

// This file reads AdmissionReviews without the Kubernetes API types: one
// scan of the review for the few fields the webhook uses, and one walk of
// the object that finds every image. The typed decoders it replaced
// decoded the whole review, then the object into its API type, then the
// object again into maps to make sure no image field was missed, each pass
// re-validating the JSON; that was most of the cost of a cached decision.
//
// It reads JSON as the API server does: field names are case-sensitive
// (after unescaping), a null field is its zero value, strings are
// unescaped as encoding/json does (invalid UTF-8 becomes U+FFFD), and the
// nesting limit is encoding/json's. It differs from the typed decoders it
// replaced in two ways, both outside what an API server sends (it encodes
// the review from its own types):
//
//   - a duplicate member name in any JSON object of the review is refused
//     (the typed decoders refused duplicates of the fields they knew and of
//     map keys, and let others pass);
//   - a field that cannot hold an image is not type-checked (the typed
//     decoders refused, for example, "restartPolicy": 5). Every field on
//     the way to an image is: containers must be an array of objects, an
//     image a string, and so on.
//
// The guarantee that no image is missed is unchanged: besides the images
// of containers, init containers, ephemeral containers and image volumes
// of the pod spec the kind says where to look for, every member named
// "image" with a string value anywhere under the object's "spec" must be
// one of those images, or the object is refused.

// Request is what the webhook reads of an AdmissionReview v1 request.
type Request struct {
	UID string
	// Kind is the object's group, version and kind (request.kind).
	Kind      GVK
	Namespace string
	Name      string
	// Operation is CREATE, UPDATE, DELETE or CONNECT.
	Operation string
	// User is request.userInfo.username.
	User string
	// Object is the object's JSON (request.object), nil when the review
	// has none. ParseReview returns it as a slice of its input.
	Object []byte
}

// GVK is a group, version and kind; the core group is "".
type GVK struct {
	Group, Version, Kind string
}

// errNotJSON is wrapped by the errors of ParseReview for input that is not
// JSON (as json.Valid says: the webhook answers 400 to it).
var errNotJSON = errors.New("not JSON")

// maxDepth is encoding/json's nesting limit: json.Valid refuses deeper.
const maxDepth = 10000

// maxImages bounds the containers and volumes (and, separately, the other
// members "image" under spec) an object may have: each costs the webhook
// far more memory than its few bytes of JSON ("[{},{},…]"), so that an 8
// MiB review without a bound made it allocate gigabytes. An object the
// API server stores (at most etcd's 1.5 MiB) has far fewer.
const maxImages = 1 << 16

// ParseReview parses an AdmissionReview v1 request from untrusted bytes. It
// reads field names case-sensitively as the API server does, refuses a
// duplicate member name anywhere in the review, another apiVersion or
// kind, a review without a request and a request without a uid. The
// request is returned, when its fields could be read at all, even with an
// error, so that the caller can echo its uid. Errors wrap ErrMalformed. The
// object is not read here (see Images); the returned Request refers to b.
func ParseReview(b []byte) (*Request, error) {
	w := getWalker(b)
	defer putWalker(w)
	s := &w.s
	var apiVersion, kind string
	var req *Request
	ok := s.value(func() bool {
		if s.peek() != '{' {
			s.fail("the review is not a JSON object")
			return s.skip()
		}
		return s.object(func(key []byte) bool {
			switch string(key) {
			case "apiVersion":
				return s.str(&apiVersion, nil, "apiVersion")
			case "kind":
				return s.str(&kind, nil, "kind")
			case "request":
				if s.null() {
					req = nil
					return true
				}
				if s.peek() != '{' {
					s.fail("request is not an object")
					return s.skip()
				}
				req = &Request{}
				return s.request(req)
			}
			return s.skip()
		})
	})
	if !ok || !s.end() {
		return nil, fmt.Errorf("%w: %w: %v", ErrMalformed, errNotJSON, s.syntax)
	}
	if s.err != nil {
		if s.errFatal {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, s.err)
		}
		return req, fmt.Errorf("%w: %v", ErrMalformed, s.err)
	}
	if apiVersion != "admission.k8s.io/v1" || kind != "AdmissionReview" {
		return req, fmt.Errorf("%w: apiVersion %q kind %q, want admission.k8s.io/v1 AdmissionReview", ErrMalformed, apiVersion, kind)
	}
	if req == nil {
		return nil, fmt.Errorf("%w: no request", ErrMalformed)
	}
	if req.UID == "" {
		return req, fmt.Errorf("%w: request has no uid", ErrMalformed)
	}
	return req, nil
}

// request reads the request object at s into r.
func (s *scanner) request(r *Request) bool {
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "uid":
			return s.str(&r.UID, nil, "request.uid")
		case "namespace":
			return s.str(&r.Namespace, nil, "request.namespace")
		case "name":
			return s.str(&r.Name, nil, "request.name")
		case "operation":
			return s.str(&r.Operation, nil, "request.operation")
		case "kind":
			if s.null() {
				return true
			}
			if s.peek() != '{' {
				s.fail("request.kind is not an object")
				return s.skip()
			}
			return s.object(func(key []byte) bool {
				switch string(key) {
				case "group":
					return s.str(&r.Kind.Group, nil, "request.kind.group")
				case "version":
					return s.str(&r.Kind.Version, nil, "request.kind.version")
				case "kind":
					return s.str(&r.Kind.Kind, nil, "request.kind.kind")
				}
				return s.skip()
			})
		case "userInfo":
			if s.null() {
				return true
			}
			if s.peek() != '{' {
				s.fail("request.userInfo is not an object")
				return s.skip()
			}
			return s.object(func(key []byte) bool {
				if string(key) == "username" {
					return s.str(&r.User, nil, "request.userInfo.username")
				}
				return s.skip()
			})
		case "object":
			// Any JSON value (a RawExtension): Images says whether it is
			// an object it can read. Duplicates in it are Images' to
			// refuse, so that a DELETE is answered whatever its object.
			if s.null() {
				r.Object = nil
				return true
			}
			start := s.i
			s.noDup++
			ok := s.skip()
			s.noDup--
			r.Object = s.b[start:s.i:s.i]
			return ok
		}
		return s.skip()
	})
}

// Images returns every image the request's object would run: containers,
// init containers, ephemeral containers and image volumes of a Pod, or of
// the pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet,
// ReplicationController, Job or CronJob, in that order (init containers,
// containers, ephemeral containers, volumes). Any other kind, an object
// that is not a JSON object, a field on the way to an image of the wrong
// type, a duplicate member name, or a member "image" with a string value
// anywhere under "spec" that is not one of the images found (a field
// custody does not know) is an error wrapping ErrMalformed (the request is
// denied).
func Images(req *Request) ([]Image, error) {
	raw := req.Object
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: request has no object", ErrMalformed)
	}
	var top node
	switch k := req.Kind; {
	case k.Group == "" && k.Version == "v1" && k.Kind == "Pod":
		top = nodePodObject
	case k.Group == "" && k.Version == "v1" && k.Kind == "ReplicationController",
		k.Group == "apps" && k.Version == "v1" && (k.Kind == "Deployment" || k.Kind == "StatefulSet" || k.Kind == "DaemonSet" || k.Kind == "ReplicaSet"),
		k.Group == "batch" && k.Version == "v1" && k.Kind == "Job":
		top = nodeWorkloadObject
	case k.Group == "batch" && k.Version == "v1" && k.Kind == "CronJob":
		top = nodeCronJobObject
	default:
		return nil, fmt.Errorf("%w: kind %s is not one custody admission checks (Pod, ReplicationController, apps/v1 Deployment, StatefulSet, DaemonSet, ReplicaSet, batch/v1 Job, CronJob)", ErrMalformed, gvk(k.Group, k.Version, k.Kind))
	}
	w := getWalker(raw)
	defer putWalker(w)
	ok := w.s.value(func() bool {
		if w.s.peek() != '{' {
			w.s.fail("the object is not a JSON object")
			return w.s.skip()
		}
		return w.walk(top, false)
	})
	if !ok || !w.s.end() {
		return nil, fmt.Errorf("%w: object: %v", ErrMalformed, w.s.syntax)
	}
	if w.s.err != nil {
		return nil, fmt.Errorf("%w: object: %v", ErrMalformed, w.s.err)
	}
	var imgs []Image
	if n := len(w.imgs[0]) + len(w.imgs[1]) + len(w.imgs[2]) + len(w.imgs[3]); n > 0 {
		imgs = make([]Image, 0, n)
		for _, l := range w.imgs {
			imgs = append(imgs, l...)
		}
	}
	if len(w.others) > 0 {
		var seen map[string]bool // when a search of imgs per other image would be slow
		if len(imgs) > 8 {
			seen = make(map[string]bool, len(imgs))
			for _, im := range imgs {
				seen[im.Ref] = true
			}
		}
		for _, o := range w.others {
			if seen != nil && !seen[o.ref] || seen == nil && !hasRef(imgs, o.ref) {
				return nil, fmt.Errorf("%w: object has an image at %s that custody does not know how to check", ErrMalformed, o)
			}
		}
	}
	return imgs, nil
}

func hasRef(imgs []Image, ref string) bool {
	for i := range imgs {
		if imgs[i].Ref == ref {
			return true
		}
	}
	return false
}

// node is what a JSON value in the object is, for finding images.
type node uint8

const (
	nodeOther          node = iota // holds no image where custody looks; under spec, its "image" strings are checked
	nodePodObject                  // the object of a Pod: spec is a pod spec
	nodeWorkloadObject             // of a Deployment etc.: spec.template.spec
	nodeCronJobObject              // of a CronJob: spec.jobTemplate.spec.template.spec
	nodeWorkloadSpec               // has template
	nodeCronJobSpec                // has jobTemplate
	nodeJobTemplate                // has spec (a workload spec)
	nodeTemplate                   // has spec (a pod spec)
	nodePodSpec                    // has the containers and volumes
	nodeContainers                 // an array of containers (of the category walker.cat)
	nodeVolumes                    // an array of volumes
)

// Image categories, in the order Images returns them.
const (
	catInit = iota
	catContainer
	catEphemeral
	catVolume
)

var catWhere = [...]string{"init container ", "container ", "ephemeral container ", "image volume "}

type walker struct {
	s      scanner
	imgs   [4][]Image
	others []otherImage
	path   []byte // of the value being walked, under spec (for messages)
	cat    int    // the category of the next list walked
	nimgs  int    // len of the imgs, together
}

// walkers are reused: their buffers stay allocated.
var walkers = sync.Pool{New: func() any { return new(walker) }}

func getWalker(b []byte) *walker {
	w := walkers.Get().(*walker)
	w.s.reset(b)
	w.path = w.path[:0]
	for i := range w.imgs {
		w.imgs[i] = w.imgs[i][:0]
	}
	w.others = w.others[:0]
	w.nimgs = 0
	return w
}

// putWalker returns w to the pool, keeping no reference to what it read,
// nor the buffers a rare large object grew.
func putWalker(w *walker) {
	w.s.b = nil
	if cap(w.s.keys) > 4096 || cap(w.path) > 64<<10 || cap(w.others) > 1024 || w.nimgs > 1024 {
		return
	}
	clear(w.s.keys[:cap(w.s.keys)])
	for i := range w.imgs {
		clear(w.imgs[i][:cap(w.imgs[i])])
	}
	clear(w.others[:cap(w.others)])
	walkers.Put(w)
}

// addImage adds an image found, or refuses the object when it has
// maxImages already.
func (w *walker) addImage(cat int, ref, where string) {
	if w.nimgs >= maxImages {
		if w.s.err == nil {
			w.s.fail("the object has more than %d containers and image volumes", maxImages)
		}
		w.s.errFatal = true
		return
	}
	w.nimgs++
	w.imgs[cat] = append(w.imgs[cat], newImage(ref, where))
}

// otherImage is a member "image" with a string value that is not where
// custody looks for images: its value, and its path (the first few only,
// so that a large object cannot make the paths' copies quadratic) or else
// its offset in the object.
type otherImage struct {
	ref, path string
	offset    int
}

func (o otherImage) String() string {
	if o.path != "" {
		return o.path
	}
	return fmt.Sprintf("offset %d of the object", o.offset)
}

// walk walks the object or null at w.s as n; inSpec says it is under the
// object's spec.
func (w *walker) walk(n node, inSpec bool) bool {
	s := &w.s
	if n == nodeOther {
		return w.other(inSpec)
	}
	if s.null() { // a struct's zero value
		return true
	}
	switch {
	case n == nodeContainers || n == nodeVolumes:
		if s.peek() != '[' {
			s.fail("%s is not an array", w.path)
			return w.other(inSpec)
		}
		return w.list(n, inSpec)
	case s.peek() != '{':
		s.fail("%s is not an object", w.path)
		return w.other(inSpec)
	}
	return s.object(func(key []byte) bool {
		next := nodeOther
		switch n {
		case nodePodObject, nodeWorkloadObject, nodeCronJobObject:
			if string(key) != "spec" {
				return s.skip() // metadata, status: not run, not checked
			}
			switch n {
			case nodePodObject:
				next = nodePodSpec
			case nodeWorkloadObject:
				next = nodeWorkloadSpec
			default:
				next = nodeCronJobSpec
			}
			w.path = append(w.path[:0], "spec"...)
			return w.walk(next, true)
		case nodeWorkloadSpec:
			if string(key) == "template" {
				next = nodeTemplate
			}
		case nodeJobTemplate:
			if string(key) == "spec" {
				next = nodeWorkloadSpec
			}
		case nodeTemplate:
			if string(key) == "spec" {
				next = nodePodSpec
			}
		case nodeCronJobSpec:
			if string(key) == "jobTemplate" {
				next = nodeJobTemplate
			}
		case nodePodSpec:
			switch string(key) {
			case "initContainers":
				next, w.cat = nodeContainers, catInit
			case "containers":
				next, w.cat = nodeContainers, catContainer
			case "ephemeralContainers":
				next, w.cat = nodeContainers, catEphemeral
			case "volumes":
				next, w.cat = nodeVolumes, catVolume
			}
		}
		return w.member(key, next, inSpec)
	})
}

// member walks the value of the member named key as n, its path extended.
// Under spec, a member "image" with a string value that custody does not
// look for as n is remembered, to be checked against the images found.
func (w *walker) member(key []byte, n node, inSpec bool) bool {
	l := len(w.path)
	w.path = append(append(w.path, '.'), key...)
	var ok bool
	if inSpec && n == nodeOther && string(key) == "image" && w.s.peek() == '"' {
		var ref string
		o := otherImage{offset: w.s.i}
		ok = w.s.str(&ref, nil, "")
		o.ref = ref
		if len(w.others) < 100 && len(w.path) <= 1024 {
			o.path = string(w.path)
		}
		if len(w.others) < maxImages {
			w.others = append(w.others, o)
		} else if w.s.err == nil {
			w.s.fail("the object has more than %d members \"image\" under spec", maxImages)
		}
	} else {
		ok = w.walk(n, inSpec)
	}
	w.path = w.path[:l]
	return ok
}

// list walks an array of containers or volumes (category w.cat).
func (w *walker) list(n node, inSpec bool) bool {
	s := &w.s
	cat := w.cat
	l := len(w.path)
	i := 0
	ok := s.array(func() bool {
		w.path = append(strconv.AppendInt(append(w.path[:l], '['), int64(i), 10), ']')
		i++
		if s.null() { // the zero container: no name, no image
			if cat != catVolume {
				w.addImage(cat, "", catWhere[cat])
			}
			return true
		}
		if s.peek() != '{' {
			s.fail("%s is not an object", w.path)
			return w.other(inSpec)
		}
		var name, ref string
		hasImage := cat != catVolume
		ok := s.object(func(key []byte) bool {
			switch string(key) {
			case "name":
				return s.str(&name, w.path, ".name")
			case "image":
				if cat != catVolume {
					return s.str(&ref, w.path, ".image")
				}
				// An image volume: {"reference": "…"} or null.
				if s.null() {
					hasImage = false
					return true
				}
				if s.peek() != '{' {
					s.fail("%s.image is not an object", w.path)
					return w.other(inSpec)
				}
				hasImage = true
				l := len(w.path)
				w.path = append(w.path, ".image"...)
				ok := s.object(func(key []byte) bool {
					if string(key) == "reference" {
						return s.str(&ref, w.path, ".reference")
					}
					return w.member(key, nodeOther, inSpec)
				})
				w.path = w.path[:l]
				return ok
			case "rbd":
				if cat != catVolume || s.peek() != '{' {
					break
				}
				// A Ceph RBD volume's "image" names a block device image in
				// the Ceph pool, not a container image: not one to check.
				l := len(w.path)
				w.path = append(w.path, ".rbd"...)
				ok := s.object(func(key []byte) bool {
					if string(key) == "image" {
						var rbdImage string
						return s.str(&rbdImage, w.path, ".image")
					}
					return w.member(key, nodeOther, inSpec)
				})
				w.path = w.path[:l]
				return ok
			}
			return w.member(key, nodeOther, inSpec)
		})
		if hasImage {
			w.addImage(cat, ref, catWhere[cat]+name)
		}
		return ok
	})
	w.path = w.path[:l]
	return ok
}

// other walks a value that holds no image custody looks for; under spec,
// every member "image" with a string value in it is remembered.
func (w *walker) other(inSpec bool) bool {
	s := &w.s
	if !inSpec {
		return s.skip()
	}
	switch s.peek() {
	case '{':
		return s.object(func(key []byte) bool { return w.member(key, nodeOther, inSpec) })
	case '[':
		l := len(w.path)
		i := 0
		ok := s.array(func() bool {
			w.path = append(strconv.AppendInt(append(w.path[:l], '['), int64(i), 10), ']')
			i++
			return w.other(inSpec)
		})
		w.path = w.path[:l]
		return ok
	}
	return s.skip()
}

// scanner reads JSON. Its methods return false at a syntax error (s.syntax
// says which), after which nothing more is read. Errors of meaning (a
// field of the wrong type, a duplicate name) are kept in s.err, the first
// only, and reading goes on, so that input that is not JSON is always told
// apart from JSON the webhook refuses.
type scanner struct {
	b      []byte
	i      int
	depth  int
	syntax error
	err    error
	// errFatal: s.err is one after which the typed decoder returned no
	// review (a field of the wrong type), not a duplicate.
	errFatal bool
	// noDup > 0 while skipping a value whose duplicates are not this
	// scanner's to refuse.
	noDup int
	// keys holds the names of the members of the objects being read,
	// innermost last, for refusing duplicates.
	keys [][]byte
}

func (s *scanner) reset(b []byte) {
	s.b, s.i, s.depth, s.syntax, s.err, s.errFatal = b, 0, 0, nil, nil, false
	s.keys = s.keys[:0]
}

// fail records a field of the wrong type: the message is made for the
// first only.
func (s *scanner) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf(format, args...)
	}
	s.errFatal = true
}

func (s *scanner) synErr(msg string) bool {
	if s.syntax == nil {
		s.syntax = fmt.Errorf("%s at offset %d", msg, s.i)
	}
	return false
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, 0 at the end (and for a
// NUL byte, which is never valid JSON outside a string either).
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// value reads the whole input as one value with fn.
func (s *scanner) value(fn func() bool) bool {
	if s.peek() == 0 {
		return s.synErr("unexpected end of JSON input")
	}
	return fn()
}

// end says whether only white space is left.
func (s *scanner) end() bool {
	if s.syntax != nil {
		return false
	}
	if s.ws(); s.i < len(s.b) { // not peek: a NUL byte is not the end
		return s.synErr("invalid character after top-level value")
	}
	return true
}

// null consumes a null literal if one is next.
func (s *scanner) null() bool {
	if s.peek() == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// str reads a string (or null: "") into *dst; another value is a type
// error naming the field at+name.
func (s *scanner) str(dst *string, at []byte, name string) bool {
	switch s.peek() {
	case '"':
		raw, plain, ok := s.rawString()
		if !ok {
			return false
		}
		if plain {
			if v, ok := known(raw); ok {
				*dst = v
				return true
			}
		}
		*dst = unquote(raw, plain)
		return true
	case 'n':
		if s.null() {
			return true
		}
	}
	s.fail("%s%s is not a string", at, name)
	return s.skip()
}

// rawString reads the string at s.i, returning its bytes between the
// quotes and whether they are their own value (no escapes, valid UTF-8).
func (s *scanner) rawString() (raw []byte, plain, ok bool) {
	start := s.i + 1
	plain = true
	ascii := true
	for i := start; i < len(s.b); i++ {
		c := s.b[i]
		switch {
		case c == '"':
			s.i = i + 1
			raw = s.b[start:i]
			if !ascii && !utf8.Valid(raw) {
				plain = false
			}
			return raw, plain, true
		case c == '\\':
			plain = false
			i++
			if i >= len(s.b) {
				s.i = i
				return nil, false, s.synErr("unexpected end of JSON input")
			}
			switch s.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.b) {
					s.i = len(s.b)
					return nil, false, s.synErr("unexpected end of JSON input")
				}
				for _, h := range s.b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						s.i = i
						return nil, false, s.synErr("invalid character in \\u hexadecimal character escape")
					}
				}
				i += 4
			default:
				s.i = i
				return nil, false, s.synErr("invalid character in string escape code")
			}
		case c < 0x20:
			s.i = i
			return nil, false, s.synErr("invalid character in string literal")
		case c >= 0x80:
			ascii = false
		}
	}
	s.i = len(s.b)
	return nil, false, s.synErr("unexpected end of JSON input")
}

// known returns the string equal to b when it is one that every review
// carries, so that reading it allocates nothing.
func known(b []byte) (string, bool) {
	switch string(b) {
	case "":
		return "", true
	case "admission.k8s.io/v1":
		return "admission.k8s.io/v1", true
	case "AdmissionReview":
		return "AdmissionReview", true
	case "v1":
		return "v1", true
	case "apps":
		return "apps", true
	case "batch":
		return "batch", true
	case "Pod":
		return "Pod", true
	case "Deployment":
		return "Deployment", true
	case "ReplicaSet":
		return "ReplicaSet", true
	case "StatefulSet":
		return "StatefulSet", true
	case "DaemonSet":
		return "DaemonSet", true
	case "Job":
		return "Job", true
	case "CronJob":
		return "CronJob", true
	case "ReplicationController":
		return "ReplicationController", true
	case "CREATE":
		return "CREATE", true
	case "UPDATE":
		return "UPDATE", true
	case "DELETE":
		return "DELETE", true
	case "CONNECT":
		return "CONNECT", true
	}
	return "", false
}

// unquote returns the value of a valid JSON string's contents as
// encoding/json does.
func unquote(raw []byte, plain bool) string {
	if plain {
		return string(raw)
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var v string
	if err := json.Unmarshal(q, &v); err != nil {
		panic("admission: unquote of a validated string: " + err.Error())
	}
	return v
}

// object reads an object, calling member with each member's (unquoted)
// name with s before its value, which member must read. A repeated name
// is an error (unless s.noDup).
func (s *scanner) object(member func(key []byte) bool) bool {
	if s.peek() != '{' {
		return s.synErr("expected an object")
	}
	s.i++
	if s.depth++; s.depth > maxDepth {
		return s.synErr("exceeded max depth")
	}
	base := len(s.keys)
	var seen map[string]bool // when the object has many members
	defer func() { s.keys = s.keys[:base] }()
	if s.peek() == '}' {
		s.i++
		s.depth--
		return true
	}
	for {
		if s.peek() != '"' {
			return s.synErr("invalid character looking for beginning of object key string")
		}
		raw, plain, ok := s.rawString()
		if !ok {
			return false
		}
		key := raw
		if !plain {
			key = []byte(unquote(raw, false))
		}
		if s.noDup == 0 {
			if n := len(s.keys) - base; n < 16 {
				for _, k := range s.keys[base:] {
					if bytes.Equal(k, key) {
						s.dup(key)
						break
					}
				}
				s.keys = append(s.keys, key)
			} else { // the first 16 names are in s.keys, and all in seen
				if seen == nil {
					seen = make(map[string]bool, 2*n)
					for _, k := range s.keys[base:] {
						seen[string(k)] = true
					}
				}
				if seen[string(key)] {
					s.dup(key)
				}
				seen[string(key)] = true
			}
		}
		if s.peek() != ':' {
			return s.synErr("invalid character after object key")
		}
		s.i++
		if s.peek() == 0 {
			return s.synErr("unexpected end of JSON input")
		}
		if !member(key) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return true
		default:
			return s.synErr("invalid character after object key:value pair")
		}
	}
}

func (s *scanner) dup(key []byte) {
	if s.err == nil {
		s.err = fmt.Errorf("duplicate field %q", key)
	}
}

// array reads an array, calling elem with s before each element, which
// elem must read.
func (s *scanner) array(elem func() bool) bool {
	if s.peek() != '[' {
		return s.synErr("expected an array")
	}
	s.i++
	if s.depth++; s.depth > maxDepth {
		return s.synErr("exceeded max depth")
	}
	if s.peek() == ']' {
		s.i++
		s.depth--
		return true
	}
	for {
		if s.peek() == 0 {
			return s.synErr("unexpected end of JSON input")
		}
		if !elem() {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return true
		default:
			return s.synErr("invalid character after array element")
		}
	}
}

// skip reads any value, refusing duplicate names in its objects.
func (s *scanner) skip() bool {
	switch c := s.peek(); {
	case c == '{':
		return s.object(func([]byte) bool { return s.skip() })
	case c == '[':
		return s.array(s.skip)
	case c == '"':
		_, _, ok := s.rawString()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 0:
		return s.synErr("unexpected end of JSON input")
	}
	return s.synErr("invalid character looking for beginning of value")
}

func (s *scanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return s.synErr("invalid character in literal")
	}
	s.i += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	b, i := s.b, s.i
	digits := func() bool {
		j := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		s.i = i
		return s.synErr("invalid character in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			s.i = i
			return s.synErr("invalid character after decimal point in numeric literal")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			s.i = i
			return s.synErr("invalid character in exponent of numeric literal")
		}
	}
	s.i = i
	return true
}
