"""The bundled default weights: they load as the node's default and really see."""

import numpy as np
import pytest

from depth_perception.config import PerceptionConfig
from depth_perception.metrics import ConfusionMatrix, depth_metrics
from depth_perception.runtime import bundled_weights, load_pipeline
from depth_perception.synthetic import SyntheticWorld


@pytest.fixture(scope="module")
def pipeline():
    if bundled_weights("lightweight") is None:
        pytest.fail("depth_perception/weights/lightweight.safetensors is missing")
    loaded = load_pipeline(PerceptionConfig(backend="onnxruntime"))
    yield loaded
    loaded.close()


def test_default_weights_are_trained_metric_and_self_describing(pipeline):
    description = pipeline.description
    assert description.trained and description.metric
    assert (description.input_width, description.input_height) == (256, 192)
    assert description.class_names[:2] == ("wall", "floor")
    assert (description.min_depth, description.max_depth) == (0.15, 12.0)
    # trained over 40-100 degree lenses: metric for the 70 degree lens at 256 px, rescaled by
    # the predictor for the real camera (lightweight_real recipe)
    assert description.canonical_focal_px == pytest.approx(182.8)


def test_default_weights_see_held_out_synthetic_rooms(pipeline):
    # Scenes 9000+ are the test split: never seen in training. Loose bounds well inside the
    # measured figures (see the model card), so a broken pre/post-processing path fails here.
    metrics, confusion = [], ConfusionMatrix(pipeline.description.num_classes)
    for scene in (9001, 9002, 9003, 9004):
        frame = SyntheticWorld("indoor", 320, 240, scene_index=scene).render(5)
        prediction = pipeline.predictor.predict(frame.rgb, frame.intrinsics)
        valid = np.isfinite(frame.depth) & np.isfinite(prediction.depth)
        metrics.append(depth_metrics(prediction.depth, frame.depth, valid))
        confusion.update(prediction.labels, frame.labels)
    assert np.mean([m["abs_rel"] for m in metrics]) < 0.25
    assert np.mean([m["a1"] for m in metrics]) > 0.6
    assert confusion.compute()["miou"] > 0.3
