"""Archive members are streamed and read with a size cap: a member larger
than common.MAX_MEMBER_BYTES is refused, naming archive and member, before
any of it is read (a 2 MB .tgz can hold a 2 GB member of zeros)."""

import gzip
import io
import tarfile

import pytest

from rationality_jax.data import sources
from rationality_jax.data.builders import common
from tests.data import test_data_dogs
from tests.data import test_data_imagenet_train

HUGE = 2 << 30  # 2 GiB


def claimed_size_tgz(name: str, size: int) -> bytes:
  """A .tgz of a few hundred bytes whose one member's header says `size`."""
  info = tarfile.TarInfo(name)
  info.size = size
  return gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024))


def test_a_member_over_the_cap_is_refused_before_it_is_read(tmp_path):
  path = tmp_path / "annotation.tar.gz"
  path.write_bytes(claimed_size_tgz("Annotation/n02085620/x", HUGE))
  assert path.stat().st_size < 200
  with pytest.raises(common.MemberTooLargeError) as error:
    list(common.iter_tar(path))
  assert str(error.value) == (
    "annotation.tar.gz: member Annotation/n02085620/x is 2,147,483,648 bytes, "
    "more than the 536,870,912 a member may have (common.MAX_MEMBER_BYTES); "
    "not reading it. Is it the archive as distributed? Raise the limit if "
    "the member is genuine."
  )


def test_a_build_names_the_archive_and_the_oversized_member(
  fake, tmp_path, monkeypatch
):
  """A compressible member over the (lowered) cap: 3 MiB of zeros in a
  .tar.gz of a few KB."""
  manual = test_data_dogs.write_dogs(fake, tmp_path / "manual")
  member = "Images/n02085782-Japanese_spaniel/n02085782_2.jpg"
  buf = io.BytesIO()
  with tarfile.open(manual / "images.tar") as tar:
    members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
  members[member] = bytes(3 << 20)
  fake.write_tar(buf, members, "w:gz")
  (manual / "images.tar").unlink()
  (manual / "images.tar.gz").write_bytes(buf.getvalue())
  assert (manual / "images.tar.gz").stat().st_size < 20_000
  monkeypatch.setattr(common, "MAX_MEMBER_BYTES", 1 << 20)
  with pytest.raises(
    common.MemberTooLargeError,
    match=rf"^images\.tar\.gz: member {member} is 3,145,728 bytes, more than "
    r"the 1,048,576 a member may have",
  ):
    sources.build("stanford_dogs_masks", tmp_path / "data", manual_dir=manual)


def test_a_tar_inside_a_tar_is_streamed_not_capped(fake, tmp_path, monkeypatch):
  """ImageNet's class tars are read as they are iterated: only their
  members, each far below the cap, are read into memory."""
  manual = test_data_imagenet_train.write_train(fake, tmp_path / "manual")
  wnids = test_data_imagenet_train.WNIDS
  with tarfile.open(manual / "ILSVRC2012_img_train.tar") as tar:
    sizes = {m.name: m.size for m in tar.getmembers()}
  monkeypatch.setattr(common, "MAX_MEMBER_BYTES", 4096)
  assert min(sizes.values()) > 4096  # every class tar is over the cap
  builder = sources.build(
    "imagenet2012_train", tmp_path / "data", manual_dir=manual, wnids=wnids
  )
  assert builder.info.splits["train"].num_examples == 10
  # The CMYK JPEG (3.3 KB) is over a cap of 2 KB: named inside its class tar.
  monkeypatch.setattr(common, "MAX_MEMBER_BYTES", 2048)
  with pytest.raises(
    common.MemberTooLargeError,
    match=r"^ILSVRC2012_img_train\.tar/n01443537\.tar: member "
    r"n01443537_10027\.JPEG is [\d,]+ bytes, more than the 2,048",
  ):
    sources.build(
      "imagenet2012_train", tmp_path / "other", manual_dir=manual, wnids=wnids
    )
