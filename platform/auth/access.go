// Package auth is the platform's rpc.Authorizer: every call is checked against the
// vigil.common.v1.access option its method declares in the proto registry (deny by
// default), with the caller resolved from its bearer credential; and the audit
// interceptor that records every mutating call.
package auth

import (
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

// AccessTable reads methods' access options from the proto registry, caching each
// method's answer (including "none") so the registry is consulted once per method.
type AccessTable struct {
	files *protoregistry.Files
	cache sync.Map // full method -> *commonv1.Access (nil when the method declares none)
}

// NewAccessTable reads from files; nil means the global registry (every generated
// package linked into the binary).
func NewAccessTable(files *protoregistry.Files) *AccessTable {
	if files == nil {
		files = protoregistry.GlobalFiles
	}
	return &AccessTable{files: files}
}

// Lookup returns the access rule of fullMethod ("/pkg.Service/Method"), or nil when the
// method is unknown or declares none.
func (t *AccessTable) Lookup(fullMethod string) *commonv1.Access {
	if v, ok := t.cache.Load(fullMethod); ok {
		return v.(*commonv1.Access)
	}
	a := t.read(fullMethod)
	t.cache.Store(fullMethod, a)
	return a
}

// foreignAccess gives the rules of services Vigil hosts whose contracts are not ours and
// so carry no access option. Reflection describes the same contracts /openapi.json
// publishes, so anyone may use it (grpcurl, Postman, generated-client tooling).
var foreignAccess = map[string]*commonv1.Access{
	"grpc.reflection.v1.ServerReflection":      {Kind: commonv1.Access_KIND_PUBLIC},
	"grpc.reflection.v1alpha.ServerReflection": {Kind: commonv1.Access_KIND_PUBLIC},
}

func (t *AccessTable) read(fullMethod string) *commonv1.Access {
	if service, _, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/"); ok {
		if a, ok := foreignAccess[service]; ok {
			return a
		}
	}
	m := t.Method(fullMethod)
	if m == nil {
		return nil
	}
	opts, ok := m.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, commonv1.E_Access) {
		return nil
	}
	a, _ := proto.GetExtension(opts, commonv1.E_Access).(*commonv1.Access)
	if a == nil || a.GetKind() == commonv1.Access_KIND_UNSPECIFIED {
		return nil
	}
	return a
}

// Method returns the descriptor of fullMethod, or nil.
func (t *AccessTable) Method(fullMethod string) protoreflect.MethodDescriptor {
	name := strings.TrimPrefix(fullMethod, "/")
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return nil
	}
	d, err := t.files.FindDescriptorByName(protoreflect.FullName(name[:i]))
	if err != nil {
		return nil
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil
	}
	return sd.Methods().ByName(protoreflect.Name(name[i+1:]))
}
