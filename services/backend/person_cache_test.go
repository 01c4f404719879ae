package backend_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/redistest"
	"github.com/vigilhq/vigil/services/backend"
)

// cardLookups reads vigil_backend_person_cache_total{result} from a process's registry.
func cardLookups(t *testing.T, reg *prometheus.Registry, result string) int {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "vigil_backend_person_cache_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

func getCard(t *testing.T, c backendv1.PersonServiceClient, ctx context.Context, id string) *backendv1.Person {
	t.Helper()
	resp, err := c.GetPerson(ctx, &backendv1.GetPersonRequest{PersonId: id})
	require.NoError(t, err)
	return resp.GetPerson()
}

// TestPersonCardCache: a second GetPerson is served from the cache, every change is
// visible to the next GetPerson, and a card never crosses workspaces.
func TestPersonCardCache(t *testing.T) {
	var reg *prometheus.Registry
	e := newEnv(t, fx.Populate(&reg))
	a := e.admin()
	persons := e.persons()

	vip, err := e.groups().CreateGroup(a, &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "vip"}})
	require.NoError(t, err)
	gid := vip.GetGroup().GetId()
	created, err := persons.CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "Ada", GroupIds: []string{gid}}})
	require.NoError(t, err)
	pid := created.GetPerson().GetId()

	hits, misses := cardLookups(t, reg, "hit"), cardLookups(t, reg, "miss")
	first := getCard(t, persons, a, pid)
	second := getCard(t, persons, a, pid)
	require.True(t, proto.Equal(first, second))
	require.True(t, proto.Equal(created.GetPerson(), first), "the card is the person as created")
	require.Equal(t, misses+1, cardLookups(t, reg, "miss"), "the first read fills the cache")
	require.Equal(t, hits+1, cardLookups(t, reg, "hit"), "the second is served from it")

	// Another workspace asking for the cached person's id finds nothing.
	bTok, _ := e.secondWorkspace("tenant-b")
	_, err = persons.GetPerson(as(bTok), &backendv1.GetPersonRequest{PersonId: pid})
	require.Equal(t, codes.NotFound, code(err))

	changes := []struct {
		name   string
		change func()
		check  func(*backendv1.Person)
	}{
		{"rename", func() {
			_, err := persons.UpdatePerson(a, &backendv1.UpdatePersonRequest{Person: &backendv1.Person{Id: pid, Name: "Ada L."},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}})
			require.NoError(t, err)
		}, func(p *backendv1.Person) { require.Equal(t, "Ada L.", p.GetName()) }},
		{"deleting its group", func() {
			_, err := e.groups().DeleteGroup(a, &backendv1.DeleteGroupRequest{GroupId: gid})
			require.NoError(t, err)
		}, func(p *backendv1.Person) { require.Empty(t, p.GetGroupIds()) }},
	}
	for _, tc := range changes {
		before := getCard(t, persons, a, pid) // cached (a miss or a hit)
		h := cardLookups(t, reg, "hit")
		require.Equal(t, before.GetVersion(), getCard(t, persons, a, pid).GetVersion())
		require.Equal(t, h+1, cardLookups(t, reg, "hit"), "%s: the card is cached before the change", tc.name)
		tc.change()
		after := getCard(t, persons, a, pid)
		require.Greater(t, after.GetVersion(), before.GetVersion(), tc.name)
		tc.check(after)
	}

	_, err = persons.DeletePerson(a, &backendv1.DeletePersonRequest{PersonId: pid})
	require.NoError(t, err)
	_, err = persons.GetPerson(a, &backendv1.GetPersonRequest{PersonId: pid})
	require.Equal(t, codes.NotFound, code(err), "an erased person's card is gone")
}

// TestPersonCardAcrossReplicas: two processes share the database and Redis. An update
// through replica one is seen by GetPerson on replica two as soon as the update returns,
// although replica two had the card cached.
func TestPersonCardAcrossReplicas(t *testing.T) {
	var regTwo *prometheus.Registry
	e := newEnvWithRedis(t, redistest.Addr)
	a := e.admin()
	one := e.persons()
	created, err := one.CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "v0"}})
	require.NoError(t, err)
	pid := created.GetPerson().GetId()

	e.start(fx.Populate(&regTwo)) // replica 2; e.conn now points at it
	two := e.persons()
	for i := 1; i <= 5; i++ {
		getCard(t, two, a, pid)
		hits := cardLookups(t, regTwo, "hit")
		getCard(t, two, a, pid)
		require.Equal(t, hits+1, cardLookups(t, regTwo, "hit"), "round %d: replica 2 serves the card from the cache", i)

		name := fmt.Sprintf("v%d", i)
		_, err := one.UpdatePerson(a, &backendv1.UpdatePersonRequest{Person: &backendv1.Person{Id: pid, Name: name},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}})
		require.NoError(t, err)
		require.Equal(t, name, getCard(t, two, a, pid).GetName(), "round %d: replica 2 reads replica 1's write", i)
	}
}

// TestPersonCacheTTLConfig: a minute by default, 0 turns the cache off, negative is refused.
func TestPersonCacheTTLConfig(t *testing.T) {
	var def backend.Config
	def.SetDefaults()
	require.Equal(t, time.Minute, def.PersonCacheTTL)
	for _, tc := range []struct {
		ttl time.Duration
		ok  bool
	}{{0, true}, {time.Second, true}, {-time.Second, false}} {
		c := def
		c.PersonCacheTTL = tc.ttl
		require.Equal(t, tc.ok, c.Validate() == nil, tc.ttl)
	}
}
