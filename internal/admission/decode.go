package admission

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/custody-dev/custody/internal/jsonstrict"
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
	ok := s.Value(func() bool {
		if s.Peek() != '{' {
			s.fail("the review is not a JSON object")
			return s.Skip()
		}
		return s.Object(func(key []byte) bool {
			switch string(key) {
			case "apiVersion":
				return s.str(&apiVersion, nil, "apiVersion")
			case "kind":
				return s.str(&kind, nil, "kind")
			case "request":
				if s.Null() {
					req = nil
					return true
				}
				if s.Peek() != '{' {
					s.fail("request is not an object")
					return s.Skip()
				}
				req = &Request{}
				return s.request(req)
			}
			return s.Skip()
		})
	})
	if !ok || !s.End() {
		return nil, fmt.Errorf("%w: %w: %v", ErrMalformed, errNotJSON, s.Syntax)
	}
	if s.Err != nil {
		if s.errFatal {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, s.Err)
		}
		return req, fmt.Errorf("%w: %v", ErrMalformed, s.Err)
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
	return s.Object(func(key []byte) bool {
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
			if s.Null() {
				return true
			}
			if s.Peek() != '{' {
				s.fail("request.kind is not an object")
				return s.Skip()
			}
			return s.Object(func(key []byte) bool {
				switch string(key) {
				case "group":
					return s.str(&r.Kind.Group, nil, "request.kind.group")
				case "version":
					return s.str(&r.Kind.Version, nil, "request.kind.version")
				case "kind":
					return s.str(&r.Kind.Kind, nil, "request.kind.kind")
				}
				return s.Skip()
			})
		case "userInfo":
			if s.Null() {
				return true
			}
			if s.Peek() != '{' {
				s.fail("request.userInfo is not an object")
				return s.Skip()
			}
			return s.Object(func(key []byte) bool {
				if string(key) == "username" {
					return s.str(&r.User, nil, "request.userInfo.username")
				}
				return s.Skip()
			})
		case "object":
			// Any JSON value (a RawExtension): Images says whether it is
			// an object it can read. Duplicates in it are Images' to
			// refuse, so that a DELETE is answered whatever its object.
			if s.Null() {
				r.Object = nil
				return true
			}
			start := s.I
			s.NoDup++
			ok := s.Skip()
			s.NoDup--
			r.Object = s.B[start:s.I:s.I]
			return ok
		}
		return s.Skip()
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
	return images(req, false)
}

// images is Images; with pointers, each Image's Pointer is set.
func images(req *Request, pointers bool) ([]Image, error) {
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
	w.pointers = pointers
	ok := w.s.Value(func() bool {
		if w.s.Peek() != '{' {
			w.s.fail("the object is not a JSON object")
			return w.s.Skip()
		}
		return w.walk(top, false)
	})
	if !ok || !w.s.End() {
		return nil, fmt.Errorf("%w: object: %v", ErrMalformed, w.s.Syntax)
	}
	if w.s.Err != nil {
		return nil, fmt.Errorf("%w: object: %v", ErrMalformed, w.s.Err)
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
	// pointers: set each image's Pointer (for /mutate's patches).
	pointers bool
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
	w.pointers = false
	return w
}

// putWalker returns w to the pool, keeping no reference to what it read,
// nor the buffers a rare large object grew.
func putWalker(w *walker) {
	if !w.s.Release() || cap(w.path) > 64<<10 || cap(w.others) > 1024 || w.nimgs > 1024 {
		return
	}
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
		if w.s.Err == nil {
			w.s.fail("the object has more than %d containers and image volumes", maxImages)
		}
		w.s.errFatal = true
		return
	}
	w.nimgs++
	w.imgs[cat] = append(w.imgs[cat], newImage(ref, where))
}

// pointerOf is the JSON pointer (RFC 6901) of the image reference of the
// container or volume at path ("spec.template.spec.containers[3]"): every
// member name on the way to a container or volume is one of the fixed
// names walk follows, none with a character a pointer escapes.
func pointerOf(path []byte, volume bool) string {
	b := make([]byte, 0, len(path)+len("/image/reference")+1)
	b = append(b, '/')
	for _, c := range path {
		switch c {
		case '.', '[':
			b = append(b, '/')
		case ']':
		default:
			b = append(b, c)
		}
	}
	if volume {
		return string(append(b, "/image/reference"...))
	}
	return string(append(b, "/image"...))
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
	if s.Null() { // a struct's zero value
		return true
	}
	switch {
	case n == nodeContainers || n == nodeVolumes:
		if s.Peek() != '[' {
			s.fail("%s is not an array", w.path)
			return w.other(inSpec)
		}
		return w.list(n, inSpec)
	case s.Peek() != '{':
		s.fail("%s is not an object", w.path)
		return w.other(inSpec)
	}
	return s.Object(func(key []byte) bool {
		next := nodeOther
		switch n {
		case nodePodObject, nodeWorkloadObject, nodeCronJobObject:
			if string(key) != "spec" {
				return s.Skip() // metadata, status: not run, not checked
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
	if inSpec && n == nodeOther && string(key) == "image" && w.s.Peek() == '"' {
		var ref string
		o := otherImage{offset: w.s.I}
		ok = w.s.str(&ref, nil, "")
		o.ref = ref
		if len(w.others) < 100 && len(w.path) <= 1024 {
			o.path = string(w.path)
		}
		if len(w.others) < maxImages {
			w.others = append(w.others, o)
		} else if w.s.Err == nil {
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
	ok := s.Array(func() bool {
		w.path = append(strconv.AppendInt(append(w.path[:l], '['), int64(i), 10), ']')
		i++
		if s.Null() { // the zero container: no name, no image
			if cat != catVolume {
				w.addImage(cat, "", catWhere[cat])
			}
			return true
		}
		if s.Peek() != '{' {
			s.fail("%s is not an object", w.path)
			return w.other(inSpec)
		}
		var name, ref string
		hasImage := cat != catVolume
		ok := s.Object(func(key []byte) bool {
			switch string(key) {
			case "name":
				return s.str(&name, w.path, ".name")
			case "image":
				if cat != catVolume {
					return s.str(&ref, w.path, ".image")
				}
				// An image volume: {"reference": "…"} or null.
				if s.Null() {
					hasImage = false
					return true
				}
				if s.Peek() != '{' {
					s.fail("%s.image is not an object", w.path)
					return w.other(inSpec)
				}
				hasImage = true
				l := len(w.path)
				w.path = append(w.path, ".image"...)
				ok := s.Object(func(key []byte) bool {
					if string(key) == "reference" {
						return s.str(&ref, w.path, ".reference")
					}
					return w.member(key, nodeOther, inSpec)
				})
				w.path = w.path[:l]
				return ok
			case "rbd":
				if cat != catVolume || s.Peek() != '{' {
					break
				}
				// A Ceph RBD volume's "image" names a block device image in
				// the Ceph pool, not a container image: not one to check.
				l := len(w.path)
				w.path = append(w.path, ".rbd"...)
				ok := s.Object(func(key []byte) bool {
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
			if w.pointers && w.s.Err == nil {
				w.imgs[cat][len(w.imgs[cat])-1].Pointer = pointerOf(w.path, cat == catVolume)
			}
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
		return s.Skip()
	}
	switch s.Peek() {
	case '{':
		return s.Object(func(key []byte) bool { return w.member(key, nodeOther, inSpec) })
	case '[':
		l := len(w.path)
		i := 0
		ok := s.Array(func() bool {
			w.path = append(strconv.AppendInt(append(w.path[:l], '['), int64(i), 10), ']')
			i++
			return w.other(inSpec)
		})
		w.path = w.path[:l]
		return ok
	}
	return s.Skip()
}

// scanner reads reviews: jsonstrict's reader (duplicate member names
// refused, strings read as encoding/json reads them), plus errFatal.
type scanner struct {
	jsonstrict.Scanner
	// errFatal: s.Err is one after which the typed decoder returned no
	// review (a field of the wrong type), not a duplicate.
	errFatal bool
}

func (s *scanner) reset(b []byte) {
	s.Reset(b)
	s.errFatal = false
}

// fail records a field of the wrong type: the message is made for the
// first only.
func (s *scanner) fail(format string, args ...any) {
	if s.Err == nil { // Fail would make the message for every call
		s.Err = fmt.Errorf(format, args...)
	}
	s.errFatal = true
}

// str reads a string (or null: "") into *dst; another value is a type
// error naming the field at+name.
func (s *scanner) str(dst *string, at []byte, name string) bool {
	switch s.Peek() {
	case '"':
		raw, plain, ok := s.RawString()
		if !ok {
			return false
		}
		if plain {
			if v, ok := known(raw); ok {
				*dst = v
				return true
			}
		}
		*dst = jsonstrict.Unquote(raw, plain)
		return true
	case 'n':
		if s.Null() {
			return true
		}
	}
	s.fail("%s%s is not a string", at, name)
	return s.Skip()
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
