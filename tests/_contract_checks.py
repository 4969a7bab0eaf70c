"""sklearn common checks that image estimators cannot pass, and why.

sklearn's checks feed random tabular data (1 to 10 features, values outside
[0, 1]); the image data contract (DESIGN §1) rejects it on purpose. The checks
below are exactly those that fail for that reason alone; the tests of each
module check the same properties on images.
"""

IMAGE_CONTRACT_REASON = (
    "feeds random tabular data (a non-square flat array and/or values outside "
    "[0, 1]), which the image data contract (DESIGN §1) rejects"
)

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
OUTLIER_CHECKS = ["check_outliers_fit_predict", "check_outliers_train"]


def image_contract_failures(*extra_checks):
    """``EXPECTED_FAILED_CHECKS`` for an image estimator: the tabular-data checks
    plus ``extra_checks``, all for :data:`IMAGE_CONTRACT_REASON`."""
    return dict.fromkeys([*TABULAR_DATA_CHECKS, *extra_checks], IMAGE_CONTRACT_REASON)
