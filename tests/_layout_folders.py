"""A small folder of each public data set's layout, from its real label files.

``build(layout, root)`` writes one under ``root`` and returns the folder to
give the loader (or ``skcxr data describe``). The label rows are the first of
the real files in torchxrayvision's wheel (see ``_public_data``); MIMIC-CXR,
whose files are credentialed, gets a few hand-written rows in its layout.
Every 10th image (from the 3rd) is left out, as in a partial download.
"""

import csv
import gzip

from ._public_data import (
    JPEG,
    PNG8,
    PNG16,
    build_chexpert,
    head_rows,
    read_text,
    skipped,
    write_csv,
    write_file,
    xrv_data,
)

LAYOUTS = (
    "kermany",
    "chestxray14",
    "chexpert",
    "mimic",
    "padchest",
    "rsna",
    "vindr",
    "siim",
)


def build(layout, root):
    """The folder of ``layout`` written under ``root`` (returned)."""
    return globals()[f"_{layout}"](root)


def _rows_by_image(path, id_column, n_images):
    """Header and every row of the first ``n_images`` images of a label file
    (read as far as needed)."""
    opened = (
        gzip.open(path, "rt", newline="", encoding="utf-8-sig")
        if str(path).endswith(".gz")
        else open(path, newline="", encoding="utf-8-sig")
    )
    with opened as fh:
        reader = csv.reader(fh)
        header = next(reader)
        at = [h.strip() for h in header].index(id_column)
        kept, images = [], []
        for row in reader:
            if row[at] not in images:
                if len(images) == n_images:
                    break
                images.append(row[at])
            kept.append(row)
    return header, kept, images


def _kermany(root):
    base = root / "chest_xray"
    names = {
        "train/NORMAL": ["IM-0115-0001", "IM-0117-0001", "NORMAL2-IM-0117-0002"],
        "train/PNEUMONIA": [
            "person1_bacteria_1",
            "person1_bacteria_2",
            "person3_virus_6",
            "person4_bacteria_9",
        ],
        "val/NORMAL": ["NORMAL2-IM-1427-0001"],
        "val/PNEUMONIA": ["person1946_bacteria_4874"],
        "test/NORMAL": ["IM-0001-0001"],
        "test/PNEUMONIA": ["person100_bacteria_475", "person101_virus_187"],
    }
    for folder, stems in names.items():
        for stem in stems:
            write_file(base / folder / f"{stem}.jpeg", JPEG)
    return root


def _chestxray14(root):
    header, rows = head_rows(xrv_data("Data_Entry_2017_v2020.csv.gz"), 300)
    write_csv(root / "Data_Entry_2017.csv", header, rows)
    names = [row[0] for row in rows]
    test = set(names[::5])
    (root / "test_list.txt").write_text("".join(f"{n}\n" for n in names if n in test))
    (root / "train_val_list.txt").write_text(
        "".join(f"{n}\n" for n in names[:-20] if n not in test)  # 16 unassigned
    )
    for i, name in enumerate(names):
        if not skipped(i, 10):
            write_file(root / f"images_{1 + i // 150:03d}" / "images" / name, PNG8)
    return root


def _chexpert(root):
    build_chexpert(root, 400)
    return root


def _padchest(root):
    path = xrv_data("PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz")
    header, rows = head_rows(path, 300)
    at = {name: j for j, name in enumerate(header)}
    rows[7][at["Labels"]] = ""  # an unreadable label list
    write_csv(
        root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", header, rows
    )
    for i, row in enumerate(rows):
        if not skipped(i, 10):
            write_file(root / row[at["ImageDir"]] / row[at["ImageID"]], PNG16)
    return root


def _rsna(root):
    header, rows, ids = _rows_by_image(
        _unzipped(root, "kaggle_stage_2_train_labels.csv.zip"), "patientId", 120
    )
    write_csv(root / "stage_2_train_labels.csv", header, rows)
    head, found = head_rows(
        xrv_data("kaggle_stage_2_train_images_dicom_headers.csv.gz")
    )
    at, wanted = head.index("PatientID"), set(ids)
    write_csv(
        root / "stage_2_train_images_dicom_headers.csv",
        head,
        [r for r in found if r[at] in wanted],
    )
    for i, pid in enumerate(ids):
        if not skipped(i, 10):
            write_file(root / "stage_2_train_images" / f"{pid}.png", PNG8)
    return root


def _unzipped(root, name):
    path = root.parent / f"{root.name}-{name}.csv"
    path.write_text(read_text(xrv_data(name)))
    return path


def _vindr(root):
    header, rows, ids = _rows_by_image(
        xrv_data("vinbigdata-train.csv.gz"), "image_id", 80
    )
    write_csv(root / "train.csv", header, rows)
    for i, image_id in enumerate(ids):
        if not skipped(i, 10):
            write_file(root / "train" / f"{image_id}.png", PNG8)
    return root


def _siim(root):
    header, rows, ids = _rows_by_image(
        xrv_data("siim-pneumothorax-train-rle.csv.gz"), "ImageId", 100
    )
    write_csv(root / "train-rle.csv", header, rows)
    for i, uid in enumerate(ids):
        if not skipped(i, 10):
            folder = root / "dicom-images-train" / f"1.2.{i}" / f"1.2.{i}.1"
            write_file(folder / f"{uid}.png", PNG8)
    return root


MIMIC_META = (
    "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,"
    "Rows,Columns,StudyDate,StudyTime"
)


def _mimic(root):
    """Twelve images of five patients; one study has no label row."""
    images = []
    for k in range(12):
        subject = f"1000{k // 3:04d}"
        study = f"5{k // 2:07d}"
        view = ("PA", "LATERAL", "AP", "")[k % 4]
        images.append((f"d{k:02d}-aaaa", subject, study, view, f"218{k % 3}0506"))
    meta = [
        f"{d},{s},{t},CHEST (PA AND LAT),{v},3056,2544,{date},134010.234"
        for d, s, t, v, date in images
    ]
    sides = ("train", "train", "validate", "test")
    split = [f"{d},{t},{s},{sides[k % 4]}" for k, (d, s, t, _, _) in enumerate(images)]
    observations = (
        "Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,"
        "Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,"
        "Pleural Other,Pneumonia,Pneumothorax,Support Devices"
    )
    codes = ("1.0", "0.0", "-1.0", "")
    studies = dict.fromkeys((s, t) for _, s, t, _, _ in images)
    labels = [
        f"{s},{t}," + ",".join(codes[(k + j) % 4] for j in range(14))
        for k, (s, t) in enumerate(list(studies)[:-1])  # the last: no label row
    ]
    files = {
        "metadata": [MIMIC_META, *meta],
        "split": ["dicom_id,study_id,subject_id,split", *split],
        "chexpert": ["subject_id,study_id," + observations, *labels],
    }
    for kind, lines in files.items():
        text = "\n".join(lines) + "\n"
        (root / f"mimic-cxr-2.0.0-{kind}.csv.gz").write_bytes(
            gzip.compress(text.encode())
        )
    (root / "patients.csv").write_text(
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"
        "10000000,F,52,2180,2014 - 2016,\n10000001,M,70,2181,2014 - 2016,\n"
        "10000002,M,,2180,2014 - 2016,\n"
    )
    for k, (d, s, t, _, _) in enumerate(images):
        if not skipped(k, 10):
            write_file(
                root / "files" / f"p{s[:2]}" / f"p{s}" / f"s{t}" / f"{d}.jpg", JPEG
            )
    return root
