package extractor_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/testkit/skeletontest"
	"github.com/vigilhq/vigil/services/extractor"
)

// The component's logic belongs to a later stage; until then it starts, reports SERVING
// and answers UNIMPLEMENTED for every RPC of its contract.
func TestSkeleton(t *testing.T) {
	skeletontest.Run(t, skeletontest.Component{Module: extractor.Module, ServiceName: extractor.ServiceName, RESTPath: "/v1/extractor/models"})
}
