"""SlotCon's geometric alignment (``invaug``): bring a view's score map onto the region that
both views of an image share, in image orientation.

Spec: shared/specs/pretrain.md 2(a) "Geometric alignment". A view's map M (C, H, W) covers
its crop; the overlap of the two crops is the box (x1, y1, x2, y2) in this view's normalised
coordinates (0..1 across the map; if the view was h-flipped the box is already mirrored:
x1' = 1 - x2, x2' = 1 - x1). ``roi_align`` with ``aligned=True`` on the box scaled by (W, H)
resamples the box onto an H x W grid, sampling bilinearly at

    M_aligned[:, i, j] = M( y = H y1 - 1/2 + (i + 1/2) (y2 - y1),  x = W x1 - 1/2 + (j + 1/2) (x2 - x1) )

with M read bilinearly at (row y, column x), pixel p's centre at index p (the output grid has
H x W bins of (y2 - y1) x (x2 - x1) pixels; a bin is the mean of ceil(bin size)^2 bilinear
samples, i.e. a single sample at its centre when the box is no larger than the map). Flipped views are then
flipped back along W, so that column j of both aligned maps shows the same image location.

Boxes are not checked against [0, 1]: when two crops do not overlap, the original pipeline
returns boxes outside it (or with x2 < x1) and the aligned maps carry no shared content;
avoiding such pairs is the data pipeline's job.
"""
import torch
from torchvision.ops import roi_align


def align_to_overlap(maps, boxes, flipped):
    """maps (B, C, H, W), boxes (B, 4) (x1, y1, x2, y2) in [0, 1] of this view, flipped (B,)
    bool -> (B, C, H, W): the overlap region resampled to H x W, in image orientation."""
    if maps.dim() != 4:
        raise ValueError(f'align_to_overlap expects maps (B, C, H, W), got {tuple(maps.shape)}')
    num, _, height, width = maps.shape
    if boxes.shape != (num, 4):
        raise ValueError(f'align_to_overlap expects boxes ({num}, 4) (x1, y1, x2, y2), '
                         f'got {tuple(boxes.shape)}')
    flipped = torch.as_tensor(flipped, device=maps.device)
    if flipped.shape != (num,):
        raise ValueError(f'align_to_overlap expects flipped ({num},), got {tuple(flipped.shape)}')
    scale = boxes.new_tensor([width, height, width, height])
    rois = torch.cat([torch.arange(num, device=boxes.device, dtype=boxes.dtype)[:, None],
                      boxes * scale], dim=1).to(device=maps.device, dtype=maps.dtype)
    aligned = roi_align(maps, rois, output_size=(height, width), spatial_scale=1.0,
                        sampling_ratio=-1, aligned=True)
    return torch.where(flipped.bool()[:, None, None, None], aligned.flip(-1), aligned)
