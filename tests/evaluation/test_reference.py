from keras_ebm import data
from keras_ebm.evaluation import reference, report


def test_shipped_reference_classifier_is_a_strong_judge():
    splits = data.load_dataset("mnist", validation_size=0)
    classifier = reference.load_reference_classifier()
    x = data.preprocess(splits.x_test).numpy()
    # Stronger than the models it judges (the default JEM: ~99.4%).
    assert reference.label_accuracy(classifier, x, splits.y_test) >= 0.995
    assert not classifier.compiled  # shipped without optimizer state
    features = report.reference_features(classifier, x[:8])
    assert features.shape == (8, 128)
    assert classifier.get_layer(reference.FEATURES).output.shape[-1] == 128
