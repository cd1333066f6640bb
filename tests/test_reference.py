from keras_ebm import data, reference


def test_shipped_reference_classifier_is_accurate():
    splits = data.load_dataset("mnist", validation_size=0)
    classifier = reference.load_reference_classifier()
    x = data.preprocess(splits.x_test).numpy()
    assert reference.label_accuracy(classifier, x, splits.y_test) > 0.985
    assert not classifier.compiled  # shipped without optimizer state
