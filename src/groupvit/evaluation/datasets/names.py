"""Class lists of the evaluation datasets: the official (mmseg 0.x) names and the short names GroupViT prompts with.

Label value i is class i; index 0 is background in every list. Background is never put into a prompt.
"""
from __future__ import annotations

# Pascal VOC 2012: mmseg's PascalVOCDataset.CLASSES.
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]
# GroupViT's segmentation/datasets/pascal_voc.py renames three: table, plant, monitor.
VOC_PROMPT_NAMES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "table", "dog", "horse", "motorbike", "person", "plant", "sheep", "sofa", "train", "monitor",
]

# Pascal Context, 59 classes + background (mmseg PascalContextDataset: 60 labels, reduce_zero_label False).
CONTEXT_CLASSES = [
    "background", "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
    "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain",
    "dog", "door", "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light",
    "motorbike", "mountain", "mouse", "person", "plate", "platform", "pottedplant", "road", "rock", "sheep",
    "shelves", "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck",
    "tvmonitor", "wall", "water", "window", "wood",
]
# GroupViT's segmentation/datasets/pascal_context.py: airplane, plant, monitor.
CONTEXT_PROMPT_NAMES = [
    "airplane" if n == "aeroplane" else "plant" if n == "pottedplant" else "monitor" if n == "tvmonitor" else n
    for n in CONTEXT_CLASSES
]

# COCO-Object: background + the 80 COCO thing classes in COCO category-id order (GroupViT COCOObjectDataset).
COCO_OBJECT_CLASSES = [
    "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
]
COCO_OBJECT_PROMPT_NAMES = list(COCO_OBJECT_CLASSES)

# COCO category ids (1-based) of the 80 things; COCO-Stuff164k PNGs store id - 1 (0-181), 255 = unlabeled.
COCO_THING_IDS = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
    34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
]

assert len(VOC_CLASSES) == len(VOC_PROMPT_NAMES) == 21
assert len(CONTEXT_CLASSES) == len(CONTEXT_PROMPT_NAMES) == 60
assert len(COCO_OBJECT_CLASSES) == 81 and len(COCO_THING_IDS) == 80
