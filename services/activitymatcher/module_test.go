package activitymatcher_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/testkit/skeletontest"
	"github.com/vigilhq/vigil/services/activitymatcher"
)

// The component's logic belongs to a later stage; until then it starts, reports SERVING
// and answers UNIMPLEMENTED for every RPC of its contract.
func TestSkeleton(t *testing.T) {
	skeletontest.Run(t, skeletontest.Component{Module: activitymatcher.Module, ServiceName: activitymatcher.ServiceName, RESTPath: "/v1/activities:search"})
}
