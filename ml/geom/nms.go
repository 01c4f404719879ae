package geom

import "sort"

// NMS returns the indices of the boxes kept by greedy non-maximum
// suppression: highest score first, dropping any box whose IoU with a kept
// box exceeds iou.
func NMS(boxes []Box, scores []float64, iou float64) []int {
	order := make([]int, len(boxes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	var keep []int
	for _, i := range order {
		ok := true
		for _, k := range keep {
			if boxes[i].IoU(boxes[k]) > iou {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, i)
		}
	}
	return keep
}
