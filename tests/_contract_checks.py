"""sklearn common checks that image estimators cannot pass, and the image check
that tests the same property instead.

sklearn's checks feed random tabular data (1 to 10 features, values outside
[0, 1]); the image data contract (see the user guide's data contract page)
rejects it on purpose. The checks below are exactly those that fail for that
reason alone. Each one names, in :data:`COVERED_BY`, the check of
``skcxr.utils.estimator_checks`` that tests the same property on images;
tests/test_common.py runs both suites and asserts that every expected sklearn
failure has a covering image check that runs on that estimator.
"""

IMAGE_CONTRACT_REASON = (
    "feeds random tabular data (a non-square flat array and/or values outside "
    "[0, 1]), which the image data contract rejects"
)

#: sklearn check -> the image check that tests the same property on images.
COVERED_BY = {
    "check_dict_unchanged": "check_image_dict_unchanged",
    "check_dont_overwrite_parameters": "check_image_params_not_mutated",
    "check_dtype_object": "check_image_dtypes",
    "check_estimators_dtypes": "check_image_dtypes",
    "check_estimators_fit_returns_self": "check_image_fit_returns_self",
    "check_estimators_nan_inf": "check_image_invalid_values",
    "check_estimators_overwrite_params": "check_image_params_not_mutated",
    "check_estimators_pickle": "check_image_pickle",
    "check_f_contiguous_array_estimator": "check_image_array_views",
    "check_fit2d_1feature": "check_image_shape_errors",
    "check_fit2d_1sample": "check_image_one_sample",
    "check_fit2d_predict1d": "check_image_shape_errors",
    "check_fit_check_is_fitted": "check_image_fit_check_is_fitted",
    "check_fit_idempotent": "check_image_fit_idempotent",
    "check_fit_score_takes_y": "check_image_fit_score_takes_y",
    "check_methods_sample_order_invariance": "check_image_sample_order_invariance",
    "check_methods_subset_invariance": "check_image_subset_invariance",
    "check_n_features_in": "check_image_n_features_in",
    "check_n_features_in_after_fitting": "check_image_shape_errors",
    "check_pipeline_consistency": "check_image_pipeline_consistency",
    "check_positive_only_tag_during_fit": "check_image_invalid_values",
    "check_readonly_memmap_input": "check_image_readonly_memmap",
    "check_transformer_data_not_an_array": "check_image_data_not_an_array",
    "check_transformer_general": "check_image_transformer_general",
    "check_transformer_preserve_dtypes": "check_image_dtypes",
    "check_class_weight_classifiers": "check_image_class_weight",
    "check_classifier_data_not_an_array": "check_image_data_not_an_array",
    "check_classifiers_classes": "check_image_classifiers_classes",
    "check_classifiers_train": "check_image_classifiers_train",
    "check_classifiers_multilabel_representation_invariance": (
        "check_image_classifiers_multilabel"
    ),
    "check_classifiers_multilabel_output_format_predict": (
        "check_image_classifiers_multilabel"
    ),
    "check_classifiers_multilabel_output_format_predict_proba": (
        "check_image_classifiers_multilabel"
    ),
    "check_classifiers_multilabel_output_format_decision_function": (
        "check_image_classifiers_multilabel"
    ),
    "check_supervised_y_2d": "check_image_supervised_y_2d",
    "check_outliers_fit_predict": "check_image_outliers_train",
    "check_outliers_train": "check_image_outliers_train",
}

TABULAR_DATA_CHECKS = [
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
]
TRANSFORMER_CHECKS = [
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
]
CLASSIFIER_CHECKS = [
    "check_class_weight_classifiers",
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_supervised_y_2d",
]
MULTILABEL_CHECKS = [
    "check_classifiers_multilabel_representation_invariance",
    "check_classifiers_multilabel_output_format_predict",
    "check_classifiers_multilabel_output_format_predict_proba",
]
OUTLIER_CHECKS = ["check_outliers_fit_predict", "check_outliers_train"]

#: Image checks an estimator is known to fail, by class name: check -> reason.
#: Genuine behaviour, not the data contract; each entry says why.
EXPECTED_FAILED_IMAGE_CHECKS = {
    "TSNE": {
        "check_image_transformer_general": (
            "transform places samples on the fitted map by optimising them "
            "against the fixed training points, so transform(X_train) lies "
            "near, but not on, the training map that fit_transform returns"
        ),
    },
}


def covering_check(sklearn_check):
    """The image check that covers ``sklearn_check`` (KeyError if none)."""
    return COVERED_BY[sklearn_check]


def image_contract_failures(*extra_checks):
    """``EXPECTED_FAILED_CHECKS`` for an image estimator: the tabular-data checks
    plus ``extra_checks``, all for :data:`IMAGE_CONTRACT_REASON`, each reason
    naming the image check that covers it."""
    return {
        check: f"{IMAGE_CONTRACT_REASON}; covered on images by {COVERED_BY[check]}"
        for check in [*TABULAR_DATA_CHECKS, *extra_checks]
    }


def expected_image_failures(estimator):
    """Known image-check failures of ``estimator`` (check name -> reason)."""
    return EXPECTED_FAILED_IMAGE_CHECKS.get(type(estimator).__name__, {})
